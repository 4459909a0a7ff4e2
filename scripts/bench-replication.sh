#!/usr/bin/env bash
# Put throughput with replication factor 3 against factor 1 (issue 4): the same
# 3-node cluster on 127.0.0.1 (scripts/cluster.sh, nodes with --sync always),
# once per factor, each loaded by the same kvbench put-only run; prints both
# figures, their ratio and the p99 of each. Not part of the test suite; about
# 1 minute with the defaults.
#   scripts/bench-replication.sh [--dir BUILD_DIR | --bin BIN_DIR] [--seconds S]
#       [--warmup S] [--records N] [--connections C] [--inflight K] [--nodes N]
# --bin uses binaries built elsewhere as they are (no install, no build), e.g.
# to compare two commits.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
bin=""
seconds=10
warmup=2
records=20000
connections=4
inflight=64
nodes=3
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) build_dir="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --records) records="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --inflight) inflight="$2"; shift 2 ;;
    --nodes) nodes="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "$bin" ]; then
  bash scripts/install-deps.sh >/dev/null
  bash scripts/build.sh --dir "$build_dir" --target kvnode kvbroker kvecs kvbench kvclient >/dev/null
  bin=$build_dir/bin
fi
bin=$(cd "$bin" && pwd)
work=$(mktemp -d /tmp/kv-bench-rf-XXXXXX)
current=""
cleanup() {
  if [ -n "$current" ]; then
    KV_BIN_DIR=$bin KV_CLUSTER_DIR=$current bash scripts/cluster.sh down >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A tput p99
for rf in 1 3; do
  current=$work/rf$rf
  port=$(( 20000 + RANDOM % 20000 ))
  KV_BIN_DIR=$bin KV_CLUSTER_DIR=$current \
    bash scripts/cluster.sh up -n "$nodes" -p "$port" --rf "$rf" >/dev/null
  json=$("$bin/kvbench" -bh 127.0.0.1 -bp "$port" --workload mix --read-ratio 0 \
    --records "$records" --value-size 100 --connections "$connections" --inflight "$inflight" \
    --warmup "$warmup" --duration "$seconds" --json)
  tput[$rf]=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["throughput_ops"]))' "$json")
  p99[$rf]=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["latency_us"]["put"]["p99"])' "$json")
  errors=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["errors"])' "$json")
  echo "replication factor $rf: ${tput[$rf]} puts/s, p99 ${p99[$rf]} us, errors $errors"
  KV_BIN_DIR=$bin KV_CLUSTER_DIR=$current bash scripts/cluster.sh down >/dev/null
  current=""
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 -c 'import sys; print("factor 3 / factor 1: %.2f" % (int(sys.argv[1]) / max(1, int(sys.argv[2]))))' \
  "${tput[3]}" "${tput[1]}"
