#!/usr/bin/env bash
# Builds the Debian package (cpack) and checks it: declared dependencies, the files it installs,
# and that the unpacked programs run. With --install it also installs the package with apt
# (root, a throwaway machine such as CI) and runs the installed programs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target monoscope monoscope-cli >/dev/null
(cd "$BUILD" && rm -f monoscope_*.deb && cpack -G DEB >/dev/null)
DEB=$(ls "$BUILD"/monoscope_*.deb)
echo "package: $DEB ($(du -h "$DEB" | cut -f1))"
depends=$(dpkg-deb -f "$DEB" Depends)
for dep in libtorch1.13 libdnnl2 libqt6widgets6 libqcustomplot2.1-qt6 libsqlite3-0 libopenblas0-openmp; do
  case "$depends" in *"$dep"*) ;; *) echo "FAIL: Depends lacks $dep: $depends" >&2; exit 1 ;; esac
done
files=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in ./usr/bin/monoscope ./usr/bin/monoscope-cli ./usr/share/applications/monoscope.desktop \
         ./usr/share/icons/hicolor/scalable/apps/monoscope.svg ./usr/share/monoscope/demo/model/model.safetensors \
         ./usr/share/monoscope/demo/sae/sae_weights.safetensors ./usr/share/monoscope/demo/corpus/sample.tokens.safetensors; do
  grep -qx -- "$f" <<<"$files" || { echo "FAIL: the package lacks $f" >&2; exit 1; }
done
if command -v desktop-file-validate >/dev/null; then desktop-file-validate packaging/monoscope.desktop; fi
ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
dpkg-deb -x "$DEB" "$ROOT"
"$ROOT/usr/bin/monoscope-cli" --help >/dev/null
QT_QPA_PLATFORM=offscreen "$ROOT/usr/bin/monoscope" --version
if [ "${1:-}" = "--install" ]; then
  apt-get install -y -q "./$DEB" >/dev/null
  monoscope-cli tokenize --tokenizer /usr/share/monoscope/demo/model --text "In the beginning" >/dev/null
  QT_QPA_PLATFORM=offscreen monoscope --version
  echo "installed and ran the package"
fi
echo "package OK"
