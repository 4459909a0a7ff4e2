#!/usr/bin/env bash
# The main job: install what is missing, build, start a local cluster on
# 127.0.0.1 (kvbroker, kvecs and 3 kvnodes, with scripts/cluster.sh; data and
# logs under run/cluster) and open the kvclient shell on its broker. The
# cluster is stopped gracefully (cluster.sh down) when the shell exits; the
# data is there again the next time.
#   scripts/run.sh [cluster.sh up flags...]     e.g. scripts/run.sh -n 5 -p 6150
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/build.sh --target kvbroker kvecs kvnode kvclient >/dev/null

out=$(bash scripts/cluster.sh up "$@") || exit 1
trap 'bash scripts/cluster.sh down "$@"' EXIT
echo "$out"
port=$(tail -n 1 <<<"$out")  # "broker 127.0.0.1:PORT"
port=${port##*:}
echo "type 'help' for the commands, 'quit' to stop the cluster and leave"
build/bin/kvclient -bh 127.0.0.1 -bp "$port"
