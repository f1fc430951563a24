#!/usr/bin/env bash
# Prepares what tests/gpu/run.sh needs on a GPU machine whose image has LibTorch with CUDA
# (PyPI's torch), CMake and ninja but none of Debian's libraries: the core's dependencies,
# pkg-config, and Qt Core + Test (for the core test suites), downloaded as Debian packages
# (never installed here), unpacked, stripped of static libraries and documentation, with
# absolute symbolic links made relative, into one archive: .gpu-deps/prefix.tar.xz (about
# 16 MB; ignored by git, carried by the device call).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=$PWD/.gpu-deps
rm -rf "$DEST"
mkdir -p "$DEST/debs"
PKGS=(
  nlohmann-json3-dev libhnswlib-dev
  libsqlite3-dev libsqlite3-0
  libicu-dev libicu72
  zlib1g-dev
  libzip-dev libzip4
  libyaml-cpp-dev libyaml-cpp0.7
  libcurl4-openssl-dev libcurl4 libnghttp2-14 librtmp1 libssh2-1 libpsl5 libbrotli1 libldap-2.5-0 libsasl2-2
  pkgconf pkgconf-bin libpkgconf3
  qt6-base-dev qt6-base-dev-tools libqt6core6 libqt6test6 libdouble-conversion3 libpcre2-16-0 libb2-1
)
# apt downloads as the unprivileged _apt user where it can; a root-owned folder only warns.
(cd "$DEST/debs" && apt-get download "${PKGS[@]}" 2>&1 | grep -v "couldn't be accessed by user '_apt'" || true)
PREFIX=$DEST/prefix
for f in "$DEST"/debs/*.deb; do dpkg-deb -x "$f" "$PREFIX"; done
rm -rf "$PREFIX/usr/share/doc" "$PREFIX/usr/share/man" "$PREFIX/usr/share/lintian"
find "$PREFIX" -name '*.a' -delete
# Links such as libfoo.so -> /usr/lib/... would point outside the prefix where it is unpacked.
find "$PREFIX" -type l | while read -r l; do
  t=$(readlink "$l")
  case "$t" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$PREFIX$t")" "$l" ;;
  esac
done
tar -C "$PREFIX" -cf - . | xz -9 -T2 >"$DEST/prefix.tar.xz"
rm -rf "$PREFIX" "$DEST/debs"
ls -l "$DEST/prefix.tar.xz"
