#!/usr/bin/env bash
# Installs what is missing, builds and runs the whole test suite: first the
# Release build, then the same suite under AddressSanitizer and UBSan
# (skip that pass with KV_SKIP_SANITIZE=1).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

start=$(date +%s)
bash scripts/build.sh
(cd build && ctest -j2 --output-on-failure --timeout 300)
echo "release suite: $(( $(date +%s) - start )) s"

if [ "${KV_SKIP_SANITIZE:-0}" != 1 ]; then
  start=$(date +%s)
  bash scripts/build.sh --sanitize
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest -j2 --output-on-failure --timeout 600)
  echo "sanitizer suite: $(( $(date +%s) - start )) s"
fi
