#!/usr/bin/env bash
# Measures hand-off: loads about MB megabytes into one node of a local
# cluster (broker + ECS + node A on 127.0.0.1), measures client throughput,
# then adds node B (A streams B its new range) while the same load runs, then
# stops A gracefully (A streams everything else to B). Prints the MB/s of
# each transfer from the nodes' logs and the client throughput before and
# during the first hand-off. Stops everything it started, by PID.
#   scripts/bench-handoff.sh [--mb 500] [--value-size 2500] [--seconds 10]
set -euo pipefail
cd "$(dirname "$0")/.."

mb=500
value_size=2500
seconds=10
while [ $# -gt 0 ]; do
  case "$1" in
    --mb) mb="$2"; shift 2 ;;
    --value-size) value_size="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
records=$(( mb * 1000 * 1000 / value_size ))
bin=build/bin
bash scripts/build.sh --target kvnode kvbroker kvecs kvbench >/dev/null

dir=$(mktemp -d /tmp/kv-handoff-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh  # wait_file

$bin/kvbroker -a 127.0.0.1 -p 0 --port-file "$dir/broker.port" -l "$dir/broker.log" &
pids+=($!); wait_file "$dir/broker.port" $!
read -r control pub sub < "$dir/broker.port"
$bin/kvecs -bh 127.0.0.1 -bp "$control" --broker-sub-port "$sub" -d "$dir/ecs" \
  --replication-factor 1 -l "$dir/ecs.log" &
pids+=($!)
$bin/kvnode -a 127.0.0.1 -p 0 -d "$dir/a" -bh 127.0.0.1 -bp "$control" --broker-pub-port "$pub" \
  --port-file "$dir/a.port" -l "$dir/a.log" &
a_pid=$!; pids+=($a_pid); wait_file "$dir/a.port" $a_pid
read -r a_port _ < "$dir/a.port"
for _ in $(seq 1 100); do grep -q "this node serves" "$dir/a.log" && break; sleep 0.1; done

echo "loading $records records of $value_size B (~$mb MB) into node A"
$bin/kvbench -bh 127.0.0.1 -bp "$a_port" --load-only --records "$records" \
  --value-size "$value_size" --connections 4 --inflight 64 2>/dev/null | grep -E "^load"

bench() {  # bench LABEL: a mixed load of small values through the broker
  $bin/kvbench -bh 127.0.0.1 -bp "$control" --run-only --records "$records" --value-size 100 \
    --read-ratio 0.5 --connections 2 --inflight 16 --duration "$seconds" --json 2>/dev/null |
    sed -E 's/.*"throughput_ops": ?([0-9.]+).*/\1/' | { read -r ops; echo "$1: $ops ops/s"; }
}
bench "client throughput before hand-off"

$bin/kvnode -a 127.0.0.1 -p 0 -d "$dir/b" -bh 127.0.0.1 -bp "$control" --broker-pub-port "$pub" \
  --port-file "$dir/b.port" -l "$dir/b.log" &
pids+=($!)
bench "client throughput during hand-off to B"
for _ in $(seq 1 600); do grep -q "acknowledged in" "$dir/a.log" && break; sleep 0.1; done

kill -TERM "$a_pid"
for _ in $(seq 1 1200); do kill -0 "$a_pid" 2>/dev/null || break; sleep 0.1; done
echo "transfers (from node A's log):"
grep -h "acknowledged in" "$dir/a.log" | sed -E 's/.*(transfer [0-9]+: .*)/  \1/'
