#!/bin/bash
# Entrypoint of the kvstore image: runs one role, configured by environment
# variables (listed with their defaults in compose/docker-compose.yml).
#   kv-entrypoint broker|ecs|kvs|client [extra flags for that binary...]
#   kv-entrypoint health broker|ecs|kvs      exit 0 when that role is healthy
# Each role execs its binary, so the binary is PID 1 and gets docker's SIGTERM
# itself (a kvnode then leaves the ring and hands its data off).
set -euo pipefail

broker_host=${KV_BROKER_HOST:-broker}
broker_port=${KV_BROKER_PORT:-5150}
pub_port=${KV_BROKER_PUB_PORT:-$((broker_port + 1))}
sub_port=${KV_BROKER_SUB_PORT:-$((broker_port + 2))}
bind=${KV_BIND:-0.0.0.0}
log_level=${KV_LOG_LEVEL:-INFO}
data=${KV_DATA_DIR:-/data}
# Where a healthcheck reaches a local socket: the bind address, or loopback for a wildcard.
local_host=$bind
[ "$bind" = 0.0.0.0 ] && local_host=127.0.0.1

# Extra flags from KV_NODE_FLAGS / KV_ECS_FLAGS, split on white space.
read -r -a node_flags <<<"${KV_NODE_FLAGS:-}"
read -r -a ecs_flags <<<"${KV_ECS_FLAGS:-}"

run_kvs() {
  local advertise port peer
  # The default is the container's hostname, its short ID: Docker resolves it on
  # the compose network and keeps it across restarts, unlike the container's IP,
  # so a restarted node is the same ring member.
  advertise=${KV_ADVERTISE:-$(hostname)}
  port=${KV_NODE_PORT:-5144}
  peer=${KV_NODE_PEER_PORT:--1}
  # A node's address is its identity in the ring: with KV_NODE_PORT=0 the
  # ports chosen at the first start are kept in the volume and reused.
  if [ "$port" = 0 ] && [ -s "$data/port" ]; then read -r port peer <"$data/port"; fi
  [ "$port" = 0 ] && [ "$peer" = -1 ] && peer=0
  echo "$advertise" >"$data/advertise"
  exec kvnode -a "$bind" --advertise "$advertise" -p "$port" --peer-port "$peer" \
    -d "$data/node" --port-file "$data/port" -bh "$broker_host" -bp "$broker_port" \
    --broker-pub-port "$pub_port" -ll "$log_level" "${node_flags[@]}" "$@"
}

# ecs_connected: the kvecs process has an established TCP connection to the
# broker's control port (read from /proc: the ECS binds no port to probe).
ecs_connected() {
  local pid="" p inodes
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = kvecs ] && { pid=${p#/proc/}; break; }
  done
  [ -n "$pid" ] || return 1
  inodes=$(for f in /proc/"$pid"/fd/*; do readlink "$f"; done 2>/dev/null |
    sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | paste -sd' ')
  [ -n "$inodes" ] || return 1
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v port="$(printf '%04X' "$broker_port")" \
    -v inodes=" $inodes " '
      $4 == "01" && substr($3, length($3) - 3) == port && index(inodes, " " $10 " ") { found = 1 }
      END { exit !found }'
}

health() {
  case "${1:-}" in
    broker) (exec 3<>"/dev/tcp/$local_host/$broker_port") 2>/dev/null ;;
    ecs) ecs_connected ;;
    kvs)
      # Healthy once the node serves a ring that lists it.
      local port advertise
      read -r port _ <"$data/port"
      advertise=$(cat "$data/advertise")
      kvclient -bh "$local_host" -bp "$port" --timeout-ms 2000 --retry-budget-ms 0 keyrange |
        grep -qF ",$advertise:$port;"
      ;;
    *) echo "usage: kv-entrypoint health broker|ecs|kvs" >&2; exit 2 ;;
  esac
}

role=${1:-client}
[ $# -gt 0 ] && shift
case "$role" in
  broker)
    exec kvbroker -a "$bind" -p "$broker_port" --pub-port "$pub_port" --sub-port "$sub_port" \
      -ll "$log_level" "$@" ;;
  ecs)
    exec kvecs -bh "$broker_host" -bp "$broker_port" --broker-sub-port "$sub_port" \
      -d "$data/ecs" -ll "$log_level" "${ecs_flags[@]}" "$@" ;;
  kvs) run_kvs "$@" ;;
  client) exec kvclient -bh "$broker_host" -bp "$broker_port" --broker-pub-port "$pub_port" "$@" ;;
  health) health "$@" ;;
  *)
    # Anything else runs as a command, e.g. kv-entrypoint kvbench -bh broker -bp 5150
    exec "$role" "$@" ;;
esac
