#!/usr/bin/env bash
# The main job: install what is missing, build, start a local kvnode on
# 127.0.0.1 with its data under ./data, and open the kvclient shell on it.
# The node is stopped (SIGTERM, then waited for) when the shell exits.
#   scripts/run.sh [kvnode flags...]     e.g. scripts/run.sh -s LFU -c 5000
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/build.sh --target kvnode kvclient >/dev/null

mkdir -p data run
port_file=run/kvnode.port
rm -f "$port_file"
build/bin/kvnode -a 127.0.0.1 -p 0 -d data -l run/kvnode.log --port-file "$port_file" "$@" &
node_pid=$!
stop_node() {
  if kill -0 "$node_pid" 2>/dev/null; then
    kill -TERM "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
}
trap stop_node EXIT

for _ in $(seq 1 100); do
  [ -s "$port_file" ] && break
  if ! kill -0 "$node_pid" 2>/dev/null; then
    echo "kvnode failed to start; see run/kvnode.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -s "$port_file" ] || { echo "kvnode did not start within 10 s; see run/kvnode.log" >&2; exit 1; }
read -r port _ < "$port_file"  # "CLIENT_PORT PEER_PORT"
echo "kvnode on 127.0.0.1:$port (data in ./data, log in run/kvnode.log); type 'help', 'quit' to stop"
build/bin/kvclient -bh 127.0.0.1 -bp "$port"
