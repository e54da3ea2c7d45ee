#!/usr/bin/env bash
# The scratch-image contract without Docker or Nix: the static binary, alone in an empty root
# directory, run as uid/gid 65534 and as PID 1 of a new PID namespace with only PORT in its
# environment, must answer / and /health, then drain and exit 0 on SIGTERM.
#
# PID 1 matters: the kernel applies no default action to a signal that PID 1 has no handler
# for, so a binary that forgot its SIGTERM handler would hang here until SIGKILL, as it would
# in the image under `docker stop` or Cloud Run.
#
# Usage: tests/scratch-root.sh [BINARY]
#   .ci/test passes the musl release binary from .ci/musl-build (what the image ships), then
#   the glibc static one. Without BINARY, builds the glibc static binary itself (gnu target with
#   `+crt-static`, the pinned toolchain). Needs root (unshare, chroot); without it, it fails.
set -euo pipefail

fail() {
  echo "scratch-root: FAIL: $*" >&2
  exit 1
}
step() { echo "scratch-root: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root for unshare --pid and chroot (run it as root; it never skips)"
for tool in unshare chroot readelf curl python3; do
  command -v "$tool" >/dev/null || fail "missing tool: $tool"
done

bin=${1:-}
if [ -z "$bin" ]; then
  step "building the static release binary (gnu + crt-static)"
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --quiet \
    --target x86_64-unknown-linux-gnu
  bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/hyper-cloudrun"
fi
[ -x "$bin" ] || fail "no executable at $bin"

# Static: no program interpreter (dynamic loader) and no shared-library dependencies.
if readelf -l "$bin" | grep -q 'INTERP'; then
  fail "$bin asks for a program interpreter: it is dynamically linked and cannot run from scratch"
fi
if readelf -d "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
  fail "$bin needs shared libraries: $(readelf -d "$bin" | grep NEEDED | tr -s ' ' | tr '\n' ';')"
fi
step "static: no interpreter, no NEEDED entries ($(stat -c %s "$bin") bytes)"

root=$(mktemp -d)
log=$(mktemp)
pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$root" "$log"
}
trap cleanup EXIT
cp "$bin" "$root/hyper-cloudrun"
chmod 0555 "$root/hyper-cloudrun" "$root"
[ "$(ls -A "$root")" = "hyper-cloudrun" ] || fail "the root holds more than the binary"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chroot_bin=$(command -v chroot)
# env -i: nothing but PORT, as in an image whose config sets no Env.
env -i PORT="$port" "$(command -v unshare)" --pid --fork \
  "$chroot_bin" --userspec=65534:65534 "$root" /hyper-cloudrun >"$log" 2>&1 &
pid=$!

# The server's host-side pid: the chroot'ed child of unshare.
server=
for _ in $(seq 100); do
  server=$(pgrep -P "$pid" 2>/dev/null | head -n1 || true)
  [ -n "$server" ] && grep -q '"listening"' "$log" && break
  sleep 0.05
done
grep -q '"listening"' "$log" || fail "no listening line: $(cat "$log")"
grep -q "\"addr\":\"0.0.0.0:$port\"" "$log" || fail "not bound on 0.0.0.0:$port: $(cat "$log")"
[ -n "$server" ] || fail "cannot find the server process"

nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$server/status")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$server/status")
gid=$(awk '/^Gid:/ {print $2}' "/proc/$server/status")
envs=$(tr '\0' ' ' <"/proc/$server/environ")
[ "$nspid" = 1 ] || fail "server is pid $nspid in its namespace, not 1"
[ "$uid" = 65534 ] && [ "$gid" = 65534 ] || fail "server runs as $uid:$gid, not 65534:65534"
[ "$envs" = "PORT=$port " ] || fail "environment is '$envs', expected only PORT"
step "running as PID 1 of its namespace, uid:gid 65534:65534, env: $envs"

for path in / /health; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port$path") ||
    fail "GET $path: curl failed"
  [ "$code" = 200 ] || fail "GET $path returned $code"
  step "GET $path -> 200"
done

start=$(date +%s%N)
kill -TERM "$server"
status=0
for _ in $(seq 200); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then
  fail "still running 10 s after SIGTERM: PID 1 ignored it (no handler?)"
fi
wait "$pid" || status=$?
pid=
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[ "$status" = 0 ] || fail "exit status $status after SIGTERM: $(tail -n 3 "$log")"
grep -q '"message":"drained"' "$log" || fail "no drained line: $(cat "$log")"
step "SIGTERM -> drained, exit 0 in ${elapsed_ms} ms"
echo "scratch-root: 1 passed, 0 failed"
