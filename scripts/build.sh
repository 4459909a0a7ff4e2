#!/usr/bin/env bash
# Configures and builds into a build directory (default: build, Release).
#   scripts/build.sh [--sanitize] [--dir DIR] [cmake --build args...]
# --sanitize builds with AddressSanitizer and UBSan (default dir build-asan).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=""
sanitize=OFF
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize=ON; shift ;;
    --dir) dir="$2"; shift 2 ;;
    *) break ;;
  esac
done
if [ -z "$dir" ]; then
  if [ "$sanitize" = ON ]; then dir=build-asan; else dir=build; fi
fi
build_type=Release
[ "$sanitize" = ON ] && build_type=RelWithDebInfo

cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$build_type" -DKV_SANITIZE="$sanitize" >/dev/null
cmake --build "$dir" -j2 "$@"
