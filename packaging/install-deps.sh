#!/usr/bin/env bash
# Installs every Debian package Monoscope needs to build, test and run.
# Usage: sudo packaging/install-deps.sh   (root on CI machines)
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake ninja-build pkg-config \
  libtorch-dev libopenblas0-openmp libdnnl-dev ocl-icd-opencl-dev libgloo-dev \
  qt6-base-dev qt6-svg-dev libqcustomplot-dev libgl-dev \
  nlohmann-json3-dev libsqlite3-dev sqlite3 libicu-dev zlib1g-dev libzip-dev libyaml-cpp-dev \
  libhnswlib-dev libcurl4-openssl-dev libcpp-httplib-dev python3 python3-venv \
  clang libclang-rt-14-dev \
  xvfb xauth file
