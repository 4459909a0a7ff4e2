#!/usr/bin/env bash
# End-to-end test of the compose stack on this machine, with a private dockerd:
#   install docker.io, docker-compose, debootstrap and tmux if missing; start a
#   dockerd that touches neither the firewall nor the network (no iptables, no
#   bridge) on its own socket; make debian:bookworm(-slim) with debootstrap when
#   they cannot be pulled; build the image with host networking; run the stack
#   with docker-compose.host.yml (everything on 127.0.0.1); scale kvs 3 -> 6 -> 4
#   while a client container writes and reads; check every acknowledged write;
#   scale client to 2 and drive one shell with `docker exec` and one through
#   `docker attach` (in tmux); `down -v`; stop the dockerd by PID, always.
# Prints how long each phase took. Run as root (apt-get, dockerd).
#   compose/test-stack.sh
# Kept between runs on one machine: the debootstrap tarball in
# $KV_STACK_CACHE (/var/cache/kvstore-ci) and the dockerd data root (images,
# build cache) in $KV_STACK_STATE (/tmp/kvstore-ci), guarded by a lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${KV_STACK_CACHE:-/var/cache/kvstore-ci}
state=${KV_STACK_STATE:-/tmp/kvstore-ci}
work=$(mktemp -d /tmp/kvstore-stack-XXXXXX)
project=kvstackci
tmux_socket=kvstack-$$
# Debian's docker CLI (it matches the dockerd below) before any other on PATH.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export DOCKER_HOST=unix://$work/docker.sock
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0
compose=(docker-compose -p "$project" -f compose/docker-compose.yml -f compose/docker-compose.host.yml)

log() { echo "test-stack: $*"; }
die() { echo "test-stack: FAILED: $*" >&2; exit 1; }

# --- phases and cleanup ------------------------------------------------------------

phase_names=() phase_secs=() phase_name="" phase_start=0
phase() {
  local now
  now=$(date +%s)
  if [ -n "$phase_name" ]; then phase_names+=("$phase_name"); phase_secs+=($((now - phase_start))); fi
  phase_name=$1 phase_start=$now
  [ -n "$1" ] && log "== $1"
  return 0
}

dockerd_pid=""
stack_up=0
cleanup() {
  local rc=$? i
  set +e
  trap - EXIT
  if [ $rc -ne 0 ] && [ $stack_up = 1 ]; then
    log "logs of the stack (last 30 lines per container):"
    "${compose[@]}" logs --no-color --tail 30 2>&1 | tail -n 200
  fi
  tmux -L "$tmux_socket" kill-server 2>/dev/null
  if [ $stack_up = 1 ]; then
    phase "down -v (cleanup)"
    "${compose[@]}" down -v --remove-orphans -t 100 >>"$work/compose.log" 2>&1
  fi
  if [ -n "$dockerd_pid" ]; then
    phase "stop dockerd"
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 300); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$dockerd_pid" 2>/dev/null; then
      log "dockerd $dockerd_pid did not stop within 60 s; kill -9"
      kill -9 "$dockerd_pid"
    fi
    wait "$dockerd_pid" 2>/dev/null
    # dockerd leaves its default network namespace mounted in the exec root.
    umount "$work/exec/netns/default" 2>/dev/null
  fi
  phase ""
  log "phase timings:"
  for i in "${!phase_names[@]}"; do printf 'test-stack:   %-34s %4d s\n' "${phase_names[$i]}" "${phase_secs[$i]}"; done
  printf 'test-stack:   %-34s %4d s\n' total "$SECONDS"
  if [ $rc -ne 0 ]; then
    log "dockerd log: last lines"; tail -n 20 "$work/dockerd.log" 2>/dev/null
    log "FAILED (exit $rc)"
  else
    log "passed"
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- docker ---------------------------------------------------------------------------

install_missing() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v tmux >/dev/null || need+=(tmux)
  [ ${#need[@]} -eq 0 ] && { log "docker.io, docker-compose, debootstrap and tmux present"; return; }
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

start_dockerd() {
  mkdir -p "$state/docker" "$cache"
  exec 9>"$state/lock"
  flock -w 900 9 || die "another test-stack.sh run holds $state/lock"
  # The lock stays held (fd 9 is inherited) as long as this dockerd runs.
  dockerd --iptables=false --ip-forward=false --ip-masq=false --bridge=none \
    --data-root "$state/docker" --exec-root "$work/exec" --pidfile "$work/docker.pid" \
    -H "$DOCKER_HOST" >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 300); do
    docker version >/dev/null 2>&1 && { log "dockerd $dockerd_pid on $DOCKER_HOST"; return; }
    kill -0 "$dockerd_pid" 2>/dev/null || { dockerd_pid=""; die "dockerd exited; see its log above"; }
    sleep 0.2
  done
  die "dockerd did not answer within 60 s"
}

# The debootstrap tarball: a minbase bookworm with the same apt sources as the
# official image (bookworm, bookworm-updates, bookworm-security).
rootfs_tarball() {
  local tarball=$cache/debian-bookworm-minbase.tar root=$work/rootfs
  if [ -s "$tarball" ]; then echo "$tarball"; return; fi
  log "debootstrap --variant=minbase bookworm (once per machine; cached in $tarball)" >&2
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -f "$root"/etc/apt/sources.list "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin
  rm -rf "$root"/var/lib/apt/lists/*
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  echo "$tarball"
}

import_base() {  # import_base TAG [slim]
  local tarball dir=$work/base
  tarball=$(rootfs_tarball)
  mkdir -p "$dir"
  tar -C "$dir" -xf "$tarball"
  # As in the official images: apt keeps no package files or caches.
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
  if [ "${2:-}" = slim ]; then
    # slim, as the official one: no documentation, manual pages or translations,
    # and dpkg told to leave them out of later installs.
    rm -rf "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/*
    cat >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
EOF
  fi
  tar --numeric-owner -C "$dir" -c . |
    docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "$1" >/dev/null
  rm -rf "$dir"
}

base_images() {
  local tag
  for tag in debian:bookworm debian:bookworm-slim; do
    if docker image inspect "$tag" >/dev/null 2>&1; then log "$tag present"; continue; fi
    if timeout 120 docker pull -q "$tag" >/dev/null 2>&1; then log "pulled $tag"; continue; fi
    log "$tag cannot be pulled; making it with debootstrap"
    import_base "$tag" "${tag#debian:bookworm-}"
  done
}

# --- the stack ------------------------------------------------------------------------

free_port_triple() {  # a broker control port P with P, P+1, P+2 free, below the ephemeral range
  local p i
  for i in $(seq 1 50); do
    p=$((20000 + (RANDOM % 5000) * 2))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null && continue
    (exec 3<>"/dev/tcp/127.0.0.1/$((p + 2))") 2>/dev/null && continue
    echo "$p"; return
  done
  die "no free broker port found"
}

container() {  # container SERVICE NUMBER: its id
  docker ps -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" \
    --filter "label=com.docker.compose.container-number=$2"
}

kvclient_in() {  # kvclient_in CONTAINER ARGS...: kvclient on the broker, inside CONTAINER
  local c=$1
  shift
  docker exec -i "$c" kvclient -bh 127.0.0.1 -bp "$broker_port" "$@"
}

ring_nodes() {  # the number of distinct nodes in the broker's ring
  kvclient_in "$client1" --timeout-ms 2000 keyrange 2>/dev/null | sed 's/^keyrange_success //' |
    tr ';' '\n' | awk -F, 'NF == 3 { print $3 }' | sort -u | wc -l
}

all_kvs_healthy() {
  local c
  for c in $(docker ps -q --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=kvs"); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$c")" = healthy ] || return 1
  done
}

wait_ring() {  # wait_ring N SECONDS: the ring lists N nodes and every kvs container is healthy
  local deadline=$((SECONDS + $2)) n=0
  while [ $SECONDS -lt $deadline ]; do
    n=$(ring_nodes || echo 0)
    if [ "$n" -eq "$1" ] && all_kvs_healthy; then log "ring has $1 nodes, all healthy"; return; fi
    sleep 1
  done
  die "the ring has $n nodes, not $1, after $2 s"
}

scale() {  # scale KVS CLIENTS
  "${compose[@]}" up -d --scale "kvs=$1" --scale "client=$2" >>"$work/compose.log" 2>&1 ||
    { tail -n 20 "$work/compose.log" >&2; die "compose up --scale kvs=$1 --scale client=$2 failed"; }
}

# The writer: put wI value-I and get w((I+1)/2) in turn, paced, through one
# scripted kvclient in the client container, until /tmp/kv-stop appears in it
# (or 20,000 puts). Each command prints exactly one line.
start_writer() {
  docker exec "$client1" rm -f /tmp/kv-stop
  docker exec "$client1" bash -c '
    i=0
    while [ $i -lt 20000 ] && [ ! -e /tmp/kv-stop ]; do
      i=$((i + 1))
      echo "put w$i value-$i"
      echo "get w$(( (i + 1) / 2 ))"
      sleep 0.02
    done | kvclient -bh 127.0.0.1 -bp '"$broker_port" >"$work/writer.out" 2>"$work/writer.err" &
  writer_pid=$!
}

stop_writer() {
  docker exec "$client1" touch /tmp/kv-stop
  for _ in $(seq 1 300); do kill -0 "$writer_pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$writer_pid" 2>/dev/null && die "the writer did not stop within 60 s"
  wait "$writer_pid" || die "the writer failed: $(tail -n 3 "$work/writer.err")"
}

check_writes() {
  local puts acked bad_reads final_bad
  puts=$(awk 'NR % 2 == 1' "$work/writer.out" | wc -l)
  awk 'NR % 2 == 1 && ($1 == "put_success" || $1 == "put_update") { print "w" (NR + 1) / 2 }' \
    "$work/writer.out" >"$work/acked"
  acked=$(wc -l <"$work/acked")
  # Reads during the scaling: a key whose put was acknowledged must come back with
  # its value; a read that failed for another reason (a timeout) only counts.
  read -r bad_reads other_reads < <(awk -v acked="$work/acked" '
    BEGIN { while ((getline k < acked) > 0) ok[k] = 1 }
    NR % 2 == 0 {
      j = int((NR / 2 + 1) / 2); key = "w" j
      if (!(key in ok)) next
      if ($0 == "get_success " key " value-" j) next
      if ($0 == "get_error " key || $1 == "get_success") { bad++; print "bad read: " $0 > "/dev/stderr" }
      else other++
    }
    END { print bad + 0, other + 0 }' "$work/writer.out")
  log "writer: $puts puts, $acked acknowledged; reads during scaling: $bad_reads wrong, $other_reads failed (timeouts)"
  [ "$acked" -ge 100 ] || die "only $acked acknowledged writes"
  [ "$bad_reads" -eq 0 ] || die "$bad_reads reads of acknowledged writes came back wrong"
  sed 's/^/get /' "$work/acked" | kvclient_in "$client1" >"$work/final.out"
  final_bad=$(paste -d' ' "$work/acked" "$work/final.out" |
    awk '{ j = substr($1, 2) } $0 != $1 " get_success " $1 " value-" j { n++; if (n <= 5) print "missing: " $0 > "/dev/stderr" } END { print n + 0 }')
  [ "$final_bad" -eq 0 ] || die "$final_bad of $acked acknowledged writes are not readable after scaling"
  log "all $acked acknowledged writes read back with their values"
}

drive_second_client() {
  local client2 out
  client2=$(container client 2)
  [ -n "$client2" ] || die "no second client container"
  out=$(printf 'put shell-key hello from client 2\nget shell-key\n' | kvclient_in "$client2")
  [ "$out" = $'put_success shell-key\nget_success shell-key hello from client 2' ] ||
    die "scripted shell in client 2 said: $out"
  log "client 2, scripted with docker exec: $(tr '\n' '|' <<<"$out")"
  # The container's own shell, as a person reaches it: docker attach in a terminal.
  tmux -L "$tmux_socket" new-session -d -s attach -x 160 -y 40 "docker attach $client2"
  sleep 1
  tmux -L "$tmux_socket" send-keys -t attach 'get shell-key' Enter
  for _ in $(seq 1 50); do
    tmux -L "$tmux_socket" capture-pane -p -t attach | grep -q 'get_success shell-key hello from client 2' && break
    sleep 0.2
  done
  tmux -L "$tmux_socket" capture-pane -p -t attach | grep -q 'get_success shell-key hello from client 2' ||
    die "docker attach to client 2 showed: $(tmux -L "$tmux_socket" capture-pane -p -t attach)"
  tmux -L "$tmux_socket" send-keys -t attach C-p C-q
  log "client 2, through docker attach: get shell-key answered"
  tmux -L "$tmux_socket" kill-server 2>/dev/null || true
  [ "$(docker inspect -f '{{.State.Running}}' "$client2")" = true ] || die "client 2 stopped after detach"
}

# --- the run ----------------------------------------------------------------------------

phase "install"
install_missing
phase "start dockerd"
start_dockerd
phase "base images"
base_images
phase "build image"
"${compose[@]}" build >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; die "build failed"; }
size=$(docker image inspect -f '{{.Size}}' "${KV_IMAGE:-kvstore:latest}")
log "image ${KV_IMAGE:-kvstore:latest}: $((size / 1000000)) MB (base debian:bookworm-slim: $(($(docker image inspect -f '{{.Size}}' debian:bookworm-slim) / 1000000)) MB)"

phase "up: kvs=3 client=1"
broker_port=$(free_port_triple)
export KV_BROKER_PORT=$broker_port
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true  # a stack left by a killed run
stack_up=1
scale 3 1
client1=$(container client 1)
[ -n "$client1" ] || die "no client container"
wait_ring 3 120
log "broker on 127.0.0.1:$broker_port"

phase "scale kvs 3 -> 6 while writing"
start_writer
sleep 3
scale 6 1
wait_ring 6 180
phase "scale kvs 6 -> 4 while writing"
scale 4 1
wait_ring 4 180
# How the ring changed: the removed replicas should have left (no failed nodes).
docker logs "$(container ecs 1)" 2>&1 | grep "committed and published" | tail -n 3 |
  sed -E 's/^.*ring version/test-stack:   ecs: ring version/' || true
sleep 3
stop_writer
phase "check acknowledged writes"
check_writes

phase "client=2, drive a shell"
scale 4 2
drive_second_client

phase "down -v"
"${compose[@]}" down -v --remove-orphans -t 100 >>"$work/compose.log" 2>&1 || die "compose down failed"
stack_up=0
[ -z "$(docker ps -aq)" ] || die "containers left after down"
pruned=$(docker volume prune -f 2>/dev/null | grep -c "^[0-9a-f]\{64\}$" || true)
log "removed the volumes of the scaled-down replicas too ($pruned)"
networks=$(docker network ls --format '{{.Name}}' | grep -vx -e host -e none || true)
[ -z "$networks" ] || die "networks other than host and none exist: $networks"
