#!/usr/bin/env bash
# Installs exactly the Debian packages this project needs to build and test.
# Idempotent: packages already installed are skipped; apt-get runs only when
# something is missing. Used by the README commands, .ci/run and the Dockerfile.
set -euo pipefail

PACKAGES=(
  cmake g++ make pkg-config
  libzmq3-dev cppzmq-dev
  capnproto libcapnp-dev
  liblmdb-dev
  libspdlog-dev libfmt-dev
  catch2
  libssl-dev     # MD5 for ring and key placement
  libedit-dev    # line editing and history in the kvclient shell
  libhiredis-dev # kvbench's Redis target (--target redis://HOST:PORT)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
