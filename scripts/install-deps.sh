#!/usr/bin/env bash
# Installs every Debian package reelfarm needs to build, test and run.
# Idempotent: packages already present are left alone. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libzmq3-dev cppzmq-dev libhiredis-dev libprotobuf-dev protobuf-compiler zlib1g-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libcpp-httplib-dev libssl-dev libsystemd-dev
  ffmpeg redis-server redis-tools prometheus python3
  # tests: HDR sources whose container carries mastering metadata (mkvmerge)
  mkvtoolnix
  # tests: the web board's browser test (headless Chromium driven by Selenium)
  chromium chromium-driver python3-selenium
  # tests: the compose file's schema check (deploy/check; no daemon needed)
  docker-compose
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
