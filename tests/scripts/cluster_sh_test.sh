#!/usr/bin/env bash
# scripts/cluster.sh end to end, in a fresh run directory with free ports on
# 127.0.0.1: up (3 nodes), put and get through the kvclient shell, add a node,
# down, up again and read everything back, down. Registered with ctest.
#   tests/scripts/cluster_sh_test.sh BIN_DIR
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export KV_BIN_DIR=${1:?usage: cluster_sh_test.sh BIN_DIR}
export KV_CLUSTER_DIR
KV_CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kvtest-cluster-sh-XXXXXX")
cluster=(bash "$repo/scripts/cluster.sh")
keys=200

fail() { echo "FAIL: $*" >&2; exit 1; }

# Whatever happens, stop what the run directory lists: cluster.sh down first,
# then kill -9 any of those PIDs still running that is one of our binaries.
cleanup() {
  local rc=$? f pid
  "${cluster[@]}" down >/dev/null 2>&1 || true
  for f in "$KV_CLUSTER_DIR"/*.pid "$KV_CLUSTER_DIR"/node-*/pid; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    case "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)" in
      "$KV_BIN_DIR"/kv*) kill -9 "$pid" 2>/dev/null || true ;;
    esac
  done
  if [ $rc -eq 0 ] && [ -z "${KVTEST_KEEP:-}" ]; then
    rm -rf "$KV_CLUSTER_DIR"
  else
    echo "run directory kept: $KV_CLUSTER_DIR" >&2
    tail -n 5 "$KV_CLUSTER_DIR"/*.log "$KV_CLUSTER_DIR"/node-*/log >&2 2>/dev/null || true
  fi
  exit $rc
}
trap cleanup EXIT

up() {  # up ARGS...: cluster.sh up, sets $port from its last line "broker 127.0.0.1:PORT"
  local out last
  out=$("${cluster[@]}" up -p 0 "$@") || fail "cluster.sh up $* failed: $out"
  echo "$out"
  last=$(tail -n 1 <<<"$out")
  [[ $last =~ ^broker\ 127\.0\.0\.1:([0-9]+)$ ]] || fail "up's last line is '$last'"
  port=${BASH_REMATCH[1]}
}

shell() {  # shell: the kvclient shell on the broker, commands on stdin
  "$KV_BIN_DIR/kvclient" -bh 127.0.0.1 -bp "$port"
}

ring_size() {
  "$KV_BIN_DIR/kvclient" -bh 127.0.0.1 -bp "$port" keyrange | sed 's/^keyrange_success //' |
    tr ';' '\n' | awk -F, 'NF == 3 { print $3 }' | sort -u | wc -l
}

expect_all_keys() {  # every key reads back with its value
  local got want
  got=$(for i in $(seq 1 $keys); do echo "get key-$i"; done | shell)
  want=$(for i in $(seq 1 $keys); do echo "get_success key-$i value $i"; done)
  [ "$got" = "$want" ] || fail "$1: reads differ: $(diff <(echo "$want") <(echo "$got") | head -n 5)"
}

start=$SECONDS

up -n 3
[ "$(ring_size)" -eq 3 ] || fail "ring has $(ring_size) nodes after up -n 3"
"${cluster[@]}" status >/dev/null || fail "status is not 0 on a running cluster"
"${cluster[@]}" up -p 0 >/dev/null 2>&1 && fail "a second up on a running cluster succeeded"

out=$(for i in $(seq 1 $keys); do echo "put key-$i value $i"; done | shell)
[ "$(grep -c '^put_success key-' <<<"$out")" -eq $keys ] || fail "puts: $(grep -v '^put_success' <<<"$out" | head -n 3)"
expect_all_keys "after put"

out=$("${cluster[@]}" add) || fail "add failed: $out"
echo "$out"
grep -q '^node-4 127\.0\.0\.1:[0-9]* joined; the ring has 4 nodes$' <<<"$out" || fail "add said: $out"
[ "$(ring_size)" -eq 4 ] || fail "ring has $(ring_size) nodes after add"
expect_all_keys "after add"

"${cluster[@]}" down || fail "down needed kill -9 or failed"
for f in "$KV_CLUSTER_DIR"/node-*/log; do
  grep -q "kvnode stopped" "$f" || fail "$f has no clean stop"
done
"${cluster[@]}" status >/dev/null && fail "status is 0 after down"

up
[ "$(ring_size)" -eq 4 ] || fail "ring has $(ring_size) nodes after the second up"
expect_all_keys "after down and up"
"${cluster[@]}" down || fail "the second down needed kill -9 or failed"

echo "cluster.sh: up, put/get, add, down, up, get: $keys keys intact ($((SECONDS - start)) s)"
