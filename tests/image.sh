#!/usr/bin/env bash
# An image tarball in a real container engine, run the way Cloud Run runs it. The same script
# for any tarball: .ci/run gives it the stand-in that .ci/musl-image assembles around the musl
# binary, the GitHub workflow `nix build .#image`'s result (and image-tls's).
#
#   tests/image.sh [--description FILE] [--variant NAME] [--binary FILE] [--ca-bundle FILE]
#                  [--static-only] TARBALL
#
# 1. The static checks of checks.image (nix/image-check.py, the one implementation): the image
#    against its description (default nix/image.json) and the values flake.nix computes, read
#    from this checkout. --binary / --ca-bundle: the files the image must hold, byte for byte.
#    A failure here ends the test before Docker; --static-only ends it there anyway (for an
#    image that is not a Cloud Run service).
# 2. `docker load`, then `docker run` as Cloud Run runs a container: read-only root, the memory
#    and CPU limits of service.yaml, PORT, K_SERVICE, K_REVISION and K_CONFIGURATION set, the
#    image's own user; published on 127.0.0.1 only. Checks: uid/gid 65534 and PID 1 seen from
#    outside (`docker top`, /proc), GET / and /health over HTTP/1.1 and h2c, the start-up log's
#    body budget from the container's cgroup (a quarter of the memory limit) and its CPU count.
# 3. A burst of 2,000 uploads of 1 MB over h2c, 1,000 in flight, inside that memory limit: every
#    answer 200 or 503, not OOM-killed, still serving.
# 4. `docker stop` (SIGTERM, then SIGKILL after 10 s, as Cloud Run) during a wrk load and with
#    uploads in flight (tests/image-drain.py): exit 0 within the grace, every in-flight upload
#    answered whole; `docker kill --signal SIGINT` -> 0; `PORT=eighty` -> exit 64 and one line.
#
# Starts dockerd only if no daemon answers (tests/docker.sh), and removes what it added.
# Loopback only; stops by itself.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/docker.sh
. "$repo/tests/docker.sh"

description=$repo/nix/image.json
variant=()
files=()
static_only=""
while [ $# -gt 1 ]; do
  case $1 in
    --description) description=$2 ;;
    --variant) variant=(--variant "$2") ;;
    --binary | --ca-bundle) files+=("$1" "$2") ;;
    --static-only)
      static_only=1
      shift
      continue
      ;;
    *) break ;;
  esac
  shift 2
done
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
  echo "usage: tests/image.sh [--description FILE] [--variant NAME] [--binary FILE] [--ca-bundle FILE] [--static-only] TARBALL" >&2
  exit 64
fi
tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")

fail() {
  printf 'FAIL %s\n' "$*"
  exit 1
}
ok() { printf 'ok   %s\n' "$*"; }
step() { printf -- '--- %s\n' "$*"; }

for tool in docker curl h2load wrk jq python3; do
  command -v "$tool" >/dev/null || fail "missing tool: $tool (.ci/run installs it)"
done
# rust-audit-info for the static checks: .ci/musl-build installs it beside its tools.
if ! command -v rust-audit-info >/dev/null && tools=$("$repo/.ci/musl-build" --tools-dir 2>/dev/null); then
  PATH=$tools/bin:$PATH
fi

work=$(mktemp -d)
cleanup() {
  docker_down
  rm -rf "$work"
}
trap cleanup EXIT

step "static checks (nix/image-check.py)"
python3 "$repo/nix/image-check.py" --description "$description" "${variant[@]}" \
  --checkout "$repo" "${files[@]}" "$tarball" || fail "the static checks rejected $tarball"
[ -z "$static_only" ] || exit 0

# --- Cloud Run's settings, from service.yaml --------------------------------------------------
service_yaml=$repo/service.yaml
yaml() { sed -n "s/^ *$1: *\"\{0,1\}\([^\" #]*\)\"\{0,1\}.*/\1/p" "$service_yaml" | head -n 1; }
service=$(sed -n '/^metadata:/,/^spec:/s/^  name: *//p' "$service_yaml")
memory_mi=$(yaml memory)
memory_mi=${memory_mi%Mi}
cpus=$(yaml cpu)
container_port=$(yaml containerPort)
[[ $memory_mi =~ ^[0-9]+$ && $cpus =~ ^[0-9]+$ && $container_port =~ ^[0-9]+$ && -n $service ]] ||
  fail "service.yaml: cannot read memory ($memory_mi Mi), cpu ($cpus), containerPort ($container_port), name ($service)"
budget=$((memory_mi * 1024 * 1024 / 4))

docker_up || fail "no Docker daemon"
ref=$(tar -xOf "$tarball" manifest.json | jq -r '.[0].RepoTags[0]')
docker_track "$ref"
step "docker load"
docker load -i "$tarball"

# run NAME [docker run args…]: a container as Cloud Run starts one (no swap: --memory-swap equal
# to --memory), detached, published on a free port of 127.0.0.1.
run() {
  local name=$docker_prefix$1
  shift
  docker run -d --name "$name" --read-only \
    --memory "${memory_mi}m" --memory-swap "${memory_mi}m" --cpus "$cpus" \
    -p "127.0.0.1::$container_port" \
    -e PORT="$container_port" -e K_SERVICE="$service" \
    -e K_REVISION="$service-00001-tst" -e K_CONFIGURATION="$service" \
    "$@" "$ref" >/dev/null
}
# serving NAME: waits up to 30 s for /health; prints the base URL.
serving() {
  local name=$docker_prefix$1 port
  port=$(docker port "$name" "$container_port/tcp" | sed -n 's/^127\.0\.0\.1://p' | head -n 1)
  for _ in $(seq 300); do
    if [ -n "$port" ] && curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then
      echo "http://127.0.0.1:$port"
      return
    fi
    [ "$(docker inspect --format '{{.State.Running}}' "$name")" = true ] || break
    sleep 0.1
  done
  docker logs "$name" >&2 || true
  fail "$1: not serving /health within 30 s"
}

# --- 2. as Cloud Run runs it ------------------------------------------------------------------
step "docker run --read-only --memory ${memory_mi}m --cpus $cpus, PORT=$container_port, K_SERVICE=$service"
run main
base=$(serving main)
name=${docker_prefix}main
bindings=$(docker port "$name")
[ "$(grep -cv '^[^ ]* -> 127\.0\.0\.1:' <<<"$bindings")" = 0 ] || fail "published beyond 127.0.0.1: $bindings"
ok "published on 127.0.0.1 only: $bindings"

read -r uid gid top_pid < <(docker top "$name" -o uid,gid,pid | sed -n 2p)
pid=$(docker inspect --format '{{.State.Pid}}' "$name")
ids=$(awk '/^(Uid|Gid):/ {printf "%s %s %s %s %s ", $1, $2, $3, $4, $5}' "/proc/$pid/status")
nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$pid/status")
[ "$uid:$gid $top_pid" = "65534:65534 $pid" ] || fail "docker top: uid $uid gid $gid pid $top_pid"
[ "$ids" = "Uid: 65534 65534 65534 65534 Gid: 65534 65534 65534 65534 " ] || fail "/proc/$pid/status: $ids"
[ "$nspid" = 1 ] || fail "the binary is PID $nspid in the container, not 1"
ok "runs as 65534:65534 (docker top, /proc/$pid/status: real, effective, saved, fs ids), PID 1 inside"

for path in / /health; do
  for proto in --http1.1 --http2-prior-knowledge; do
    got=$(curl -sS --max-time 5 "$proto" -o "$work/body" -w '%{http_code} HTTP/%{http_version}' "$base$path")
    case "$proto $got" in
      "--http1.1 200 HTTP/1.1" | "--http2-prior-knowledge 200 HTTP/2") ;;
      *) fail "GET $path ($proto): $got" ;;
    esac
    [ "$path" != /health ] || [ "$(cat "$work/body")" = ok ] || fail "GET /health said '$(cat "$work/body")'"
  done
  ok "GET $path: 200 over HTTP/1.1 and h2c"
done

docker logs "$name" >"$work/start.log" 2>&1
jq -se --argjson bytes "$budget" 'any(.[]; .message == "request body budget" and .bytes == $bytes and .source == "cgroup")' \
  "$work/start.log" >/dev/null || fail "start-up log: no body budget of $budget bytes from the cgroup: $(cat "$work/start.log")"
jq -se --argjson cpus "$cpus" --argjson port "$container_port" \
  'any(.[]; .message == "listening" and .cpus == $cpus and .port == $port)' "$work/start.log" >/dev/null ||
  fail "start-up log: not listening on $container_port with $cpus CPU: $(cat "$work/start.log")"
ok "start-up log: body budget $budget bytes (a quarter of ${memory_mi} MiB) from the cgroup, cpus $cpus, port $container_port"

# --- 3. the burst -----------------------------------------------------------------------------
step "h2load: 2000 uploads of 1 MB over h2c, 10 connections x 100 streams"
head -c 1000000 /dev/zero | tr '\0' x >"$work/1MB"
h2load -n 2000 -c 10 -m 100 -d "$work/1MB" -H 'content-type: application/octet-stream' \
  --log-file="$work/h2load.log" "$base/echo" >"$work/h2load.out" 2>&1 || true
grep -E '^(finished|requests|status codes):' "$work/h2load.out"
codes=$(cut -f2 "$work/h2load.log" | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
answered=$(awk -F'\t' '$2 == 200 || $2 == 503' "$work/h2load.log" | wc -l)
[ "$answered" = 2000 ] || fail "burst: $answered of 2000 answered 200 or 503 (status:count $codes)"
[ "$(docker inspect --format '{{.State.OOMKilled}} {{.State.Running}}' "$name")" = "false true" ] ||
  fail "burst: the container was OOM-killed or stopped: $(docker inspect --format '{{json .State}}' "$name")"
curl -fsS --max-time 5 -o /dev/null "$base/health" || fail "burst: /health no longer answers"
ok "burst: every answer 200 or 503 (status:count $codes), not OOM-killed, still serving"

# --- 4. stopping ------------------------------------------------------------------------------
step "docker stop during a wrk load, with uploads in flight"
# wrk runs until told to stop (SIGINT: it prints its figures), so the load spans the whole stop.
wrk -t1 -c16 -d60s "$base/" >"$work/wrk.out" 2>&1 &
wrk_pid=$!
sleep 1
drain=0
python3 "$repo/tests/image-drain.py" --port "${base##*:}" \
  --stop "t=\$(date +%s%N); docker stop --time 10 $name >/dev/null; echo \$(((\$(date +%s%N) - t) / 1000000)) >$work/stop-ms" \
  --signalled "docker logs $name 2>&1 | grep -q '\"message\":\"draining\"'" || drain=$?
kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" || true
[ -s "$work/stop-ms" ] || fail "docker stop never ran"
elapsed=$(cat "$work/stop-ms")
code=$(docker inspect --format '{{.State.ExitCode}}' "$name")
docker logs "$name" 2>&1 | grep -E '"(shutdown signal received|draining|drained|grace expired, cutting connections)"' || true
if [ "$code" != 0 ] || [ "$elapsed" -ge 10000 ]; then
  fail "docker stop: exit code $code after $elapsed ms (want 0 within the 10 s grace)"
fi
[ "$drain" = 0 ] || fail "docker stop cut in-flight responses short"
grep -qE '"message":"drained"' <(docker logs "$name" 2>&1) || fail "docker stop: the drain did not finish"
# wrk's socket errors are its reconnects after the listener closed (docker-proxy accepts, finds
# no server, closes); a non-2xx answer would be the server's.
grep -E 'requests in|Socket errors' "$work/wrk.out" || true
wrk_requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$work/wrk.out")
[ "${wrk_requests:-0}" -gt 0 ] || fail "wrk made no request: $(cat "$work/wrk.out")"
! grep -q 'Non-2xx' "$work/wrk.out" || fail "wrk got non-2xx answers: $(grep Non-2xx "$work/wrk.out")"
ok "docker stop: exit 0 after $elapsed ms, drained, no response cut short, wrk's $wrk_requests requests all 2xx"

step "docker kill --signal SIGINT"
run sigint
serving sigint >/dev/null
docker kill --signal SIGINT "${docker_prefix}sigint" >/dev/null
code=$(docker wait "${docker_prefix}sigint")
[ "$code" = 0 ] || fail "SIGINT: exit code $code"
ok "docker kill --signal SIGINT: exit 0"

step "PORT=eighty"
run bad-port -e PORT=eighty
code=$(docker wait "${docker_prefix}bad-port")
docker logs "${docker_prefix}bad-port" >"$work/bad-port.log" 2>&1
if [ "$code" != 64 ] || [ "$(wc -l <"$work/bad-port.log")" != 1 ] ||
  ! grep -q 'invalid PORT="eighty"' "$work/bad-port.log"; then
  fail "PORT=eighty: exit $code, log: $(cat "$work/bad-port.log")"
fi
ok "PORT=eighty: exit 64, one line: $(cat "$work/bad-port.log")"

printf 'image: all checks passed for %s\n' "$tarball"
