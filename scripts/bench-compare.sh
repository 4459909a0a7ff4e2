#!/usr/bin/env bash
# Runs the same kvbench workloads, on this machine and in this one run, against
#   3 nodes      kvbroker + kvecs --replication-factor $KV_BENCH_RF (default 3)
#                + 3 kvnodes --sync always, loaded through the broker
#   1 node       a standalone kvnode --sync always
#   redis-always redis-server --appendonly yes --appendfsync always
#   redis-none   redis-server with persistence off (--appendonly no --save "")
# all on 127.0.0.1 on free ports, data in a temporary directory, stopped by PID
# on exit; then writes the machine, the exact commands, throughput and p99 per
# workload and target, and the ratios issue 7 sets targets for, to
# docs/benchmarks.md. Installs redis-server (apt) when it is missing. About
# 5 minutes with the defaults. Not part of the test suite.
#   scripts/bench-compare.sh [--dir BUILD_DIR] [--seconds S] [--warmup S] [--records N]
#       [--connections C] [--inflight K] [--workloads "a b c d f"] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
seconds=10
warmup=2
records=100000
connections=4
inflight=256  # every target still gained from 64 to 128 to 256 (2 cores; group commits fill up)
workloads="a b c d f"
out=docs/benchmarks.md
rf=${KV_BENCH_RF:-3}
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) build_dir="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --records) records="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --inflight) inflight="$2"; shift 2 ;;
    --workloads) workloads="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v redis-server >/dev/null; then
  echo "bench-compare: installing redis-server"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server
fi
bash scripts/install-deps.sh >/dev/null
bash scripts/build.sh --dir "$build_dir" --target kvnode kvbroker kvecs kvbench kvclient >/dev/null
bin=$build_dir/bin
redis=$(command -v redis-server)

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$SECONDS
work=$(mktemp -d /tmp/kv-bench-compare-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

commands=()
start() {  # start LOG CMD...: runs CMD in the background, remembers its PID and command line
  local log=$1; shift
  local line
  line=$(printf '%q ' "$@")
  commands+=("${line% }")
  "$@" >"$log" 2>&1 &
  pids+=($!)
}

# --- the four targets --------------------------------------------------------
start "$work/broker.out" "$bin/kvbroker" -a 127.0.0.1 -p 0 --port-file "$work/broker.port" \
  -l "$work/broker.log"
wait_file "$work/broker.port" "${pids[-1]}"
read -r control pub sub < "$work/broker.port"
start "$work/ecs.out" "$bin/kvecs" -bh 127.0.0.1 -bp "$control" --broker-sub-port "$sub" \
  -d "$work/ecs" --replication-factor "$rf" -l "$work/ecs.log"
for i in 1 2 3; do
  start "$work/n$i.out" "$bin/kvnode" -a 127.0.0.1 -p 0 -d "$work/n$i" --sync always \
    -bh 127.0.0.1 -bp "$control" --broker-pub-port "$pub" --port-file "$work/n$i.port" \
    -l "$work/n$i.log"
  wait_file "$work/n$i.port" "${pids[-1]}"
done
start "$work/single.out" "$bin/kvnode" -a 127.0.0.1 -p 0 -d "$work/single" --sync always \
  --port-file "$work/single.port" -l "$work/single.log"
wait_file "$work/single.port" "${pids[-1]}"
read -r single_port _ < "$work/single.port"
redis_always_port=$(free_port)
mkdir -p "$work/redis-always" "$work/redis-none"
start "$work/redis-always.log" "$redis" --bind 127.0.0.1 --port "$redis_always_port" \
  --dir "$work/redis-always" --save "" --appendonly yes --appendfsync always
redis_none_port=$(free_port)
start "$work/redis-none.log" "$redis" --bind 127.0.0.1 --port "$redis_none_port" \
  --dir "$work/redis-none" --save "" --appendonly no

for _ in $(seq 1 300); do  # until the broker's ring has all three nodes
  ring=$("$bin/kvclient" -bh 127.0.0.1 -bp "$control" keyrange 2>/dev/null || true)
  [ "$(grep -o '127.0.0.1:[0-9]*' <<<"$ring" | sort -u | wc -l)" -eq 3 ] && break
  sleep 0.1
done
[ "$(grep -o '127.0.0.1:[0-9]*' <<<"$ring" | sort -u | wc -l)" -eq 3 ] ||
  { echo "the cluster did not form; see $work" >&2; exit 1; }

targets=(cluster single redis-always redis-none)
declare -A address=(
  [cluster]="-bh 127.0.0.1 -bp $control" [single]="-bh 127.0.0.1 -bp $single_port"
  [redis-always]="--target redis://127.0.0.1:$redis_always_port"
  [redis-none]="--target redis://127.0.0.1:$redis_none_port")
declare -A label=(
  [cluster]="3 nodes, RF $rf, sync always" [single]="1 node, sync always"
  [redis-always]="Redis, appendfsync always" [redis-none]="Redis, no persistence")
for t in "${targets[@]}"; do  # each target answers before anything is measured
  for _ in $(seq 1 100); do
    # shellcheck disable=SC2086
    "$bin/kvbench" ${address[$t]} --workload c --records 1 --ops 1 >/dev/null 2>&1 && break
    sleep 0.1
  done
done

# --- the runs -------------------------------------------------------------------
common="--records $records --value-size 100 --connections $connections --inflight $inflight"
bench_commands=()
declare -A json
bench() {  # bench KEY TARGET ARGS...: one kvbench run; its JSON goes to json[KEY]
  local key=$1 t=$2; shift 2
  local cmd
  # shellcheck disable=SC2206
  cmd=("$bin/kvbench" ${address[$t]} $common "$@" --json)
  local line
  line=$(printf '%q ' "${cmd[@]}")
  bench_commands+=("${line% }")
  json[$key]=$("${cmd[@]}" 2>>"$work/kvbench.err") || true
}
for t in "${targets[@]}"; do
  echo "bench-compare: loading $records records into ${label[$t]}" >&2
  bench "$t,load" "$t" --workload a --load-only
  for w in $workloads; do
    echo "bench-compare: workload $w on ${label[$t]}" >&2
    bench "$t,$w" "$t" --workload "$w" --run-only --warmup "$warmup" --duration "$seconds"
  done
done

# --- the report -----------------------------------------------------------------
num() { grep -o "\"$1\":[0-9.]*" <<<"$2" | head -1 | cut -d: -f2; }
p99_ms() {  # p99_ms OP JSON: the op's p99 in ms, or "-" when the workload has no such op
  local us
  us=$(grep -o "\"$1\":{[^}]*}" <<<"$2" | grep -o '"p99":[0-9]*' | head -1 | cut -d: -f2)
  if [ -z "$us" ]; then echo "-"; else awk -v u="$us" 'BEGIN { printf "%.2f", u / 1000 }'; fi
}
write_op() { case "$1" in a|b) echo update ;; d) echo insert ;; f) echo read_modify_write ;; *) echo none ;; esac; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
table_header() {  # a markdown table header: workload, then one column per target
  printf "| workload |"; for t in "${targets[@]}"; do printf " %s |" "${label[$t]}"; done; echo
  printf "|---|"; for _ in "${targets[@]}"; do printf -- "---:|"; done; echo
}
ops() { printf "%.0f" "$(num throughput_ops "${json[$1,$2]:-}" || echo 0)"; }

fsync_us=$(dd if=/dev/zero of="$work/dsync.test" bs=4k count=500 oflag=dsync 2>&1 |
  sed -nE 's/.* copied, ([0-9.]+) s.*/\1/p' | awk '{ printf "%.0f", $1 * 1e6 / 500 }')
disk=$(df -hT "$work" | awk 'NR == 2 { print $1 " (" $2 ", " $3 ")" }')
commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- 2>/dev/null || commit="$commit + uncommitted changes"

{
  echo "# Benchmarks: our store next to Redis"
  echo
  echo "Written by \`scripts/bench-compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (commit $commit);"
  echo "run it again to replace this page. How to read and reproduce the figures:"
  echo "[performance.md](performance.md)."
  echo
  echo "## Machine"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| CPUs | $(nproc) x $(lscpu | sed -nE 's/^Model name: *//p' | head -1) |"
  echo "| kernel | $(uname -sr) |"
  echo "| memory | $(free -g | awk '/^Mem:/ { print $2 " GiB" }') |"
  echo "| disk (data dirs) | $disk; a 4 KiB write + fdatasync takes ${fsync_us} µs (dd oflag=dsync) |"
  echo "| load average (1/5/15 min) before / after the run | $load_before / $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo "| Redis | $("$redis" --version | sed -nE 's/.*v=([0-9.]+).*/\1/p') |"
  echo
  echo "The run took $(( SECONDS - started )) s after the build."
  echo
  echo "Everything (servers and kvbench) shares these CPUs, and kvbench itself needs about one."
  echo "A load average above the CPU count means other work ran at the same time: compare"
  echo "the columns of one run with each other, not figures of different runs."
  echo
  echo "## Setup"
  echo
  echo "$records records of 100 bytes loaded into each target first; then each workload runs"
  echo "${warmup} s unmeasured and ${seconds} s measured, with $connections connections x $inflight requests"
  echo "in flight ($((connections * inflight)) in all; the cluster's connections go to each node, and"
  echo "its clients route each key to its node): on the 2-core machine every target's throughput"
  echo "still grew from 64 to 128 to 256 per connection, so fewer would not saturate them."
  echo "Workloads: YCSB core a (50% read / 50% update), b (95/5), c (read only), d (95% read /"
  echo "5% insert, latest keys), f (50% read / 50% read-modify-write); zipfian keys except d."
  echo
  echo "## Throughput (operations per second)"
  echo
  table_header
  for w in $workloads; do
    printf "| %s |" "$w"; for t in "${targets[@]}"; do printf " %s |" "$(ops "$t" "$w")"; done; echo
  done
  printf "| load |"; for t in "${targets[@]}"; do printf " %s |" "$(ops "$t" load)"; done; echo
  echo
  echo "## p99 latency (ms): read / write"
  echo
  echo "Write is the update (a, b), the insert (d) or the whole read-modify-write (f)."
  echo
  table_header
  for w in $workloads; do
    printf "| %s |" "$w"
    for t in "${targets[@]}"; do
      printf " %s / %s |" "$(p99_ms read "${json[$t,$w]}")" "$(p99_ms "$(write_op "$w")" "${json[$t,$w]}")"
    done
    echo
  done
  echo
  errors=0
  for key in "${!json[@]}"; do errors=$(( errors + $(num errors "${json[$key]}" || echo 0) )); done
  echo "Errors in all runs: $errors."
  echo
  echo "## Against the targets of issue 7"
  echo
  echo "| ratio | measured | target |"
  echo "|---|---:|---:|"
  echo "| workload a: 1 node / Redis appendfsync always | $(ratio "$(ops single a)" "$(ops redis-always a)") | at least 1.0x |"
  echo "| workload a: 3 nodes RF $rf / Redis appendfsync always | $(ratio "$(ops cluster a)" "$(ops redis-always a)") | at least 0.5x |"
  echo "| workload c: 3 nodes RF $rf / Redis without persistence | $(ratio "$(ops cluster c)" "$(ops redis-none c)") | at least 0.5x |"
  echo
  echo "## Exact commands"
  echo
  echo "Servers (ports as they were in this run; nodes and broker picked free ones themselves):"
  echo
  echo '```sh'
  for c in "${commands[@]}"; do echo "${c//$work/\$WORK}"; done
  echo '```'
  echo
  echo "Benchmarks, in this order:"
  echo
  echo '```sh'
  for c in "${bench_commands[@]}"; do echo "$c"; done
  echo '```'
} > "$out"
echo "bench-compare: wrote $out" >&2
sed -n '/^## Throughput/,/^## Exact/p' "$out" | head -n -1
