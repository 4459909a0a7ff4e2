# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run): background processes
# remembered by PID, waiting for a port file, finding a free port.
# The sourcing script keeps its PIDs in the array `pids` and kills them on exit.

# wait_file FILE PID: waits up to 10 s for FILE to have content; fails if PID exits first.
wait_file() {
  for _ in $(seq 1 100); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "process $2 died before writing $1" >&2; exit 1; }
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  exit 1
}

# free_port: a port on 127.0.0.1 nothing answers on (for servers that cannot pick their own).
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$(( RANDOM % 20000 + 10000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "no free port found" >&2
  exit 1
}
