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
  nlohmann-json3-dev libhnswlib-dev libcpp-httplib-dev libcpp-httplib0.11
  libsqlite3-dev libsqlite3-0
  libicu-dev libicu72
  zlib1g-dev
  libzip-dev libzip4
  libyaml-cpp-dev libyaml-cpp0.7
  libcurl4-openssl-dev libcurl4 libnghttp2-14 librtmp1 libssh2-1 libpsl5 libbrotli1 libldap-2.5-0 libsasl2-2
  pkgconf pkgconf-bin libpkgconf3
  qt6-base-dev qt6-base-dev-tools qmake6 qmake6-bin libqt6core6 libqt6test6 libdouble-conversion3 libpcre2-16-0 libb2-1
)
# Libraries those need that a machine's own system usually has: their shared objects go to
# fallback/, which tests/gpu/run.sh thins to the ones the machine lacks (by ldconfig), so that a
# system's own copy is never shadowed.
FALLBACK_PKGS=(
  libunistring2 libidn2-0 libglib2.0-0 libpcre2-8-0 libzstd1 libbz2-1.0 libgomp1
  libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2
)
mkdir -p "$DEST/fallback-debs"
# apt downloads as the unprivileged _apt user where it can; a root-owned folder only warns.
(cd "$DEST/debs" && apt-get download "${PKGS[@]}" 2>&1 | grep -v "couldn't be accessed by user '_apt'" || true)
(cd "$DEST/fallback-debs" && apt-get download "${FALLBACK_PKGS[@]}" 2>&1 | grep -v "couldn't be accessed by user '_apt'" || true)
PREFIX=$DEST/prefix
for f in "$DEST"/debs/*.deb; do dpkg-deb -x "$f" "$PREFIX"; done
for f in "$DEST"/fallback-debs/*.deb; do dpkg-deb -x "$f" "$DEST/fallback-root"; done
mkdir -p "$PREFIX/fallback"
# (GLib's package also holds GIO and GObject, which nothing here needs.)
find "$DEST/fallback-root" -name 'lib*.so.*' \( -type f -o -type l \) ! -name 'libgio*' ! -name 'libgobject*' \
  ! -name 'libgmodule*' ! -name 'libgthread*' -exec cp -P {} "$PREFIX/fallback/" \;
rm -rf "$DEST/fallback-root" "$DEST/fallback-debs"
rm -rf "$PREFIX/usr/share/doc" "$PREFIX/usr/share/man" "$PREFIX/usr/share/lintian"
find "$PREFIX" -name '*.a' -delete
# Only Qt Core and Qt Test are built against: the other modules' headers stay behind.
QTINC=$PREFIX/usr/include/x86_64-linux-gnu/qt6
find "$QTINC" -mindepth 1 -maxdepth 1 ! -name QtCore ! -name QtTest -exec rm -rf {} +
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
