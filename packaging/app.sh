#!/usr/bin/env bash
# Builds Monoscope and launches the desktop app on the bundled demo (data/demo). On first launch
# the app builds the demo's feature database as a job (progress in its Jobs panel, a few minutes
# on two cores), then opens it. Without a display it runs under Xvfb, saves a screenshot of the
# ready window to $BUILD/monoscope-demo.png and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target monoscope
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec "$BUILD/app/monoscope" --demo "$@"
fi
echo "no display: running the app under Xvfb until the demo is ready, then saving a screenshot"
exec xvfb-run -a -s "-screen 0 1600x1000x24" "$BUILD/app/monoscope" --demo --screenshot "$BUILD/monoscope-demo.png" "$@"
