#!/usr/bin/env bash
# A whole cluster on 127.0.0.1 without Docker: one kvbroker, one kvecs and N
# kvnodes, with their data, logs, ports and PIDs under one run directory.
#   scripts/cluster.sh up [-n NODES] [-p PORT] [--rf N]   start, wait for the ring
#   scripts/cluster.sh add                                 start one more node
#   scripts/cluster.sh status                              processes and the ring
#   scripts/cluster.sh down                                stop everything gracefully
# Run directory (default run/cluster in the repository; -d DIR or KV_CLUSTER_DIR):
#   broker.{pid,port,log}   ecs.{pid,log} ecs/ (ring state)
#   node-K/{pid,port,log} node-K/data/    (K = 1, 2, ...)
# A node's first start takes free ports (-p 0); later starts reuse the ports in
# node-K/port, because a node's address is its identity in the ring.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${KV_BIN_DIR:-$repo/build/bin}
dir=${KV_CLUSTER_DIR:-$repo/run/cluster}
nodes=3
port=5150
rf=""
up_timeout=${KV_UP_TIMEOUT:-60}      # seconds for the ring to reach every node
stop_timeout=${KV_STOP_TIMEOUT:-90}  # seconds for the nodes to exit; above --leave-timeout-ms (60 s)
host=127.0.0.1

usage() {
  cat <<EOF
usage: scripts/cluster.sh COMMAND [flags]
A local cluster on $host: kvbroker, kvecs and kvnodes, under one run directory.

commands:
  up        start the broker, the ECS and the nodes, wait until the ring lists every
            node, then print how to connect and, last, the line "broker $host:PORT".
            A run directory that already has more than NODES nodes starts all of them.
  add       start one more node in the running cluster and wait until it is in the ring
  status    show each process (PID, running or not) and the ring; exit 0 when all
            processes run and the ring is exactly the run directory's nodes, else 1
  down      SIGTERM the nodes (all at once: they leave the ring, and the leaves that
            would empty it are refused, so those nodes stop with their data and stay
            members), then the ECS, then the broker; each waited for by PID, kill -9
            only after a timeout (exit 1 if that was needed)

flags:
  -n NODES  nodes to start with up (default $nodes)
  -p PORT   broker control port for up; it also takes PORT+1 and PORT+2
            (default $port; 0 = free ports chosen by the broker)
  --rf N    pass --replication-factor N to kvecs (only for a new run directory)
  -d DIR    run directory (default: \$KV_CLUSTER_DIR, else run/cluster in the repository)
  -h        show this help

environment: KV_BIN_DIR (binaries, default build/bin), KV_CLUSTER_DIR,
KV_UP_TIMEOUT (s, default 60), KV_STOP_TIMEOUT (s, default 90).
EOF
}

die() { echo "cluster.sh: $*" >&2; exit 1; }

# --- processes ---------------------------------------------------------------

# alive PID NAME: PID runs and is the binary NAME (guards against PID reuse).
alive() {
  local pid=$1 name=$2 exe
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  exe=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || return 1
  [ "$(basename -- "$exe")" = "$name" ]
}

# running PID: PID exists and is not a zombie (a child of ours that exited).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

pid_of() { if [ -s "$1" ]; then cat "$1"; fi; }

# start PIDFILE LOG BINARY ARGS...: runs BINARY in its own session (so a
# Ctrl-C in the terminal does not reach it) and records its PID.
start() {
  local pidfile=$1 log=$2 name=$3
  shift 3
  setsid "$bin/$name" "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
}

# stop_pids TIMEOUT NAME PID...: waits for the PIDs to exit; kill -9 to those
# still running after TIMEOUT seconds. Returns 1 if any needed it.
stop_pids() {
  local timeout=$1 name=$2 deadline=$((SECONDS + $1)) pid left rc=0
  shift 2
  while :; do
    left=()
    for pid in "$@"; do alive "$pid" "$name" && left+=("$pid"); done
    [ ${#left[@]} -eq 0 ] && return $rc
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster.sh: $name ${left[*]} still running after ${timeout} s; kill -9" >&2
      kill -9 "${left[@]}" 2>/dev/null || true
      rc=1
      timeout=5 deadline=$((SECONDS + 5))
      set -- "${left[@]}"
      continue
    fi
    sleep 0.2
  done
}

wait_port_file() {  # wait_port_file FILE PID NAME LOG
  local deadline=$((SECONDS + 20))
  until [ -s "$1" ]; do
    running "$2" || { tail -n 5 "$4" >&2; die "$3 exited at startup; see $4"; }
    [ $SECONDS -lt $deadline ] || die "$3 wrote no port file within 20 s; see $4"
    sleep 0.1
  done
}

node_dirs() {  # node-K directories, by K
  local d
  for d in "$dir"/node-*; do [ -d "$d" ] && echo "${d##*-}"; done | sort -n
}

# --- the ring ------------------------------------------------------------------

broker_ports() {  # sets control, pub, sub from broker.port
  [ -s "$dir/broker.port" ] || die "no broker.port in $dir: is the cluster up?"
  read -r control pub sub <"$dir/broker.port"
}

# ring_addrs PORT: the distinct node addresses in the keyrange of the node or
# broker at PORT, one a line; fails if it does not answer keyrange_success.
ring_addrs() {
  local out
  out=$("$bin/kvclient" -bh "$host" -bp "$1" --timeout-ms 1000 --retry-budget-ms 0 keyrange \
    2>/dev/null) || return 1
  out=${out#keyrange_success }
  tr ';' '\n' <<<"$out" | awk -F, 'NF == 3 { print $3 }' | sort -u
}

node_addr() {  # node_addr K: its address from node-K/port
  local client _
  [ -s "$dir/node-$1/port" ] || return 1
  read -r client _ <"$dir/node-$1/port"
  echo "$host:$client"
}

# ring_complete K...: the broker's ring is exactly these nodes, and each of
# them answers keyrange with a ring that lists itself.
ring_complete() {
  local want have k addr
  want=$(for k in "$@"; do node_addr "$k" || return 1; done | sort -u)
  have=$(ring_addrs "$control") || return 1
  [ "$want" = "$have" ] || return 1
  for k in "$@"; do
    addr=$(node_addr "$k")
    ring_addrs "${addr##*:}" | grep -qxF "$addr" || return 1
  done
}

wait_ring() {  # wait_ring K...: until ring_complete, or die after up_timeout
  local deadline=$((SECONDS + up_timeout)) k
  until ring_complete "$@"; do
    for k in "$@"; do
      alive "$(pid_of "$dir/node-$k/pid")" kvnode ||
        { tail -n 5 "$dir/node-$k/log" >&2; die "node-$k exited; see $dir/node-$k/log"; }
    done
    alive "$(pid_of "$dir/ecs.pid")" kvecs || die "kvecs exited; see $dir/ecs.log"
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster.sh: the ring did not reach nodes $* within ${up_timeout} s; it lists:" >&2
      ring_addrs "$control" >&2 || true
      die "see the logs in $dir"
    fi
    sleep 0.5
  done
}

port_busy() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

# start_node K: starts node-K on its recorded ports, or on free ones the first
# time. A recorded port that another process holds is given up only if that
# address is not a ring member (a member's address is its identity).
start_node() {
  local k=$1 nd="$dir/node-$1" client=0 peer=0 addrs
  mkdir -p "$nd/data"
  if [ -s "$nd/port" ]; then
    read -r client peer <"$nd/port"
    if port_busy "$client" || port_busy "$peer"; then
      addrs=$(ring_addrs "$control" || true)
      if grep -qxF "$host:$client" <<<"$addrs"; then
        die "node-$k is the ring member $host:$client, but port $client or $peer is taken; free it and run up again"
      fi
      echo "cluster.sh: node-$k's ports $client/$peer are taken; it joins on new ones" >&2
      client=0 peer=0
    fi
  fi
  rm -f "$nd/port"
  start "$nd/pid" "$nd/log" kvnode -a "$host" -p "$client" --peer-port "$peer" -d "$nd/data" \
    -bh "$host" -bp "$control" --broker-pub-port "$pub" --port-file "$nd/port" -l "$nd/log"
  wait_port_file "$nd/port" "$(cat "$nd/pid")" kvnode "$nd/log"
}

running_anything() {
  local k
  alive "$(pid_of "$dir/broker.pid")" kvbroker && return 0
  alive "$(pid_of "$dir/ecs.pid")" kvecs && return 0
  for k in $(node_dirs); do alive "$(pid_of "$dir/node-$k/pid")" kvnode && return 0; done
  return 1
}

# --- commands ------------------------------------------------------------------

cmd_up() {
  local b k all=()
  for b in kvbroker kvecs kvnode kvclient; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing; build first: bash scripts/build.sh"
  done
  running_anything && die "a cluster is already running in $dir (see: scripts/cluster.sh status)"
  mkdir -p "$dir"
  trap 'echo "cluster.sh: up failed; stopping what it started" >&2; cmd_down >/dev/null 2>&1 || true' EXIT

  rm -f "$dir/broker.port"
  start "$dir/broker.pid" "$dir/broker.log" kvbroker -a "$host" -p "$port" \
    --port-file "$dir/broker.port" -l "$dir/broker.log"
  wait_port_file "$dir/broker.port" "$(cat "$dir/broker.pid")" kvbroker "$dir/broker.log"
  broker_ports
  start "$dir/ecs.pid" "$dir/ecs.log" kvecs -bh "$host" -bp "$control" --broker-sub-port "$sub" \
    -d "$dir/ecs" -l "$dir/ecs.log" ${rf:+--replication-factor "$rf"}

  mapfile -t all < <(node_dirs)
  [ ${#all[@]} -gt "$nodes" ] && echo "cluster.sh: $dir has ${#all[@]} nodes; starting all of them"
  for ((k = ${#all[@]} + 1; k <= nodes; k++)); do all+=("$k"); done
  for k in "${all[@]}"; do start_node "$k"; done
  wait_ring "${all[@]}"
  trap - EXIT

  echo "cluster up: ${#all[@]} nodes ($(for k in "${all[@]}"; do node_addr "$k"; done | paste -sd' ')), run directory $dir"
  echo "connect:    $bin/kvclient -bh $host -bp $control"
  echo "stop:       scripts/cluster.sh down${dir_flag}"
  echo "broker $host:$control"
}

cmd_add() {
  local all=() running=() k i
  alive "$(pid_of "$dir/broker.pid")" kvbroker || die "the broker is not running in $dir"
  broker_ports
  mapfile -t all < <(node_dirs)
  k=1
  [ ${#all[@]} -eq 0 ] || k=$((all[${#all[@]} - 1] + 1))
  start_node "$k"
  for i in "${all[@]}" "$k"; do
    alive "$(pid_of "$dir/node-$i/pid")" kvnode && running+=("$i")
  done
  wait_ring "${running[@]}"
  echo "node-$k $(node_addr "$k") joined; the ring has ${#running[@]} nodes"
}

cmd_status() {
  local k pid addr state ok=0 want=() have
  show() {  # show NAME PIDFILE BINARY DETAIL
    pid=$(pid_of "$2")
    if alive "$pid" "$3"; then state="running (pid $pid)"; else state="stopped"; ok=1; fi
    printf '%-8s %-22s %s\n' "$1" "$4" "$state"
  }
  [ -d "$dir" ] || die "no run directory $dir"
  addr="-"
  [ -s "$dir/broker.port" ] && { broker_ports; addr="$host:$control"; }
  show broker "$dir/broker.pid" kvbroker "$addr"
  show ecs "$dir/ecs.pid" kvecs "state in ecs/"
  for k in $(node_dirs); do
    show "node-$k" "$dir/node-$k/pid" kvnode "$(node_addr "$k" || echo -)"
    [[ $state == running* ]] && want+=("$k")
  done
  if alive "$(pid_of "$dir/broker.pid")" kvbroker && have=$(ring_addrs "$control"); then
    echo "ring ($(wc -l <<<"$have") nodes): $(paste -sd' ' <<<"$have")"
    "$bin/kvclient" -bh "$host" -bp "$control" --timeout-ms 1000 keyrange 2>/dev/null |
      sed 's/^keyrange_success //' | tr ';' '\n' | awk -F, 'NF == 3 { printf "  (%s, %s] %s\n", $1, $2, $3 }'
    ring_complete "${want[@]}" || ok=1
  else
    echo "ring: none (the broker is not running or has no ring yet)"
    ok=1
  fi
  return $ok
}

cmd_down() {
  local k pid node_pids=() rc=0 ecs_pid broker_pid
  [ -d "$dir" ] || { echo "nothing to stop: no run directory $dir"; return 0; }
  ecs_pid=$(pid_of "$dir/ecs.pid")
  broker_pid=$(pid_of "$dir/broker.pid")
  for k in $(node_dirs); do
    pid=$(pid_of "$dir/node-$k/pid")
    alive "$pid" kvnode && node_pids+=("$pid")
  done
  if [ ${#node_pids[@]} -gt 0 ]; then
    kill -TERM "${node_pids[@]}"
    if ! alive "$ecs_pid" kvecs || ! alive "$broker_pid" kvbroker; then
      # No leave can complete: a second signal stops a node at once, a member still.
      sleep 0.2
      kill -TERM "${node_pids[@]}" 2>/dev/null || true
    fi
    stop_pids "$stop_timeout" kvnode "${node_pids[@]}" || rc=1
  fi
  alive "$ecs_pid" kvecs && { kill -TERM "$ecs_pid"; stop_pids 15 kvecs "$ecs_pid" || rc=1; }
  alive "$broker_pid" kvbroker && { kill -TERM "$broker_pid"; stop_pids 15 kvbroker "$broker_pid" || rc=1; }
  rm -f "$dir"/*.pid "$dir"/node-*/pid
  echo "cluster down: ${#node_pids[@]} nodes, ECS and broker stopped (data and logs kept in $dir)"
  return $rc
}

# --- arguments -----------------------------------------------------------------

command=""
dir_flag=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help | help) usage; exit 0 ;;
    -n) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive number"; nodes=$2; shift 2 ;;
    -p) [[ ${2:-} =~ ^[0-9]+$ && ${2:-} -le 65533 ]] || die "-p needs a port, 0..65533"; port=$2; shift 2 ;;
    --rf) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--rf needs a positive number"; rf=$2; shift 2 ;;
    -d) [ -n "${2:-}" ] || die "-d needs a directory"; dir=$(realpath -m -- "$2"); dir_flag=" -d $dir"; shift 2 ;;
    up | add | status | down)
      [ -z "$command" ] || die "one command at a time"
      command=$1; shift ;;
    *) echo "cluster.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$command" ] || { usage >&2; exit 2; }
dir=$(realpath -m -- "$dir")
"cmd_$command"
