#!/usr/bin/env bash
# bench/idle.sh BIN [N]: what an idle connection costs the server, in resident memory.
#
# For each kind of idle connection (nothing sent; a keep-alive `GET /` answered; a 64 KiB
# `POST /echo` answered; the h2c preface and SETTINGS), starts BIN on a free port, reads its
# VmRSS, opens N such connections with bench/harness.rs (`idle`), reads VmRSS again once they
# are all open, and prints the difference per connection. N defaults to 10000. Talks to
# 127.0.0.1 only, and stops what it started however it ends. Needs a descriptor limit above N
# (it raises its own soft limit towards the hard one) and rustc for the harness.
set -euo pipefail

bin=$(realpath "${1:?usage: bench/idle.sh BIN [N]}")
n=${2:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server=""
holder=""
cleanup() {
  if [ -n "$holder" ]; then kill "$holder" 2>/dev/null || true; fi
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((n + 64)) ] || {
  echo "idle.sh: the descriptor limit ($(ulimit -n)) is below N=$n" >&2
  exit 1
}
rustc --edition 2024 -O "$root/bench/harness.rs" -o "$work/harness"

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

echo "$(basename "$bin"), $n connections each ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs)"
printf '%-8s %12s %12s %16s\n' kind "RSS before" "RSS with N" "per connection"
for kind in silent get echo h2c; do
  # A cap above N whatever the machine's memory limit, so that no idle connection is closed.
  PORT=0 KEEPALIVE_TIMEOUT=600s MAX_CONNECTIONS=$((n + 16)) "$bin" >"$work/log" &
  server=$!
  for _ in $(seq 100); do
    grep -q '"listening"' "$work/log" 2>/dev/null && break
    sleep 0.05
  done
  port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$work/log" | head -1)
  sleep 0.5
  before=$(rss "$server")
  "$work/harness" idle "$port" "$n" "$kind" 600 >"$work/holder" &
  holder=$!
  for _ in $(seq 1200); do
    grep -q '^open' "$work/holder" 2>/dev/null && break
    kill -0 "$holder" 2>/dev/null || {
      echo "idle.sh: the harness failed for $kind" >&2
      exit 1
    }
    sleep 0.1
  done
  sleep 1
  with=$(rss "$server")
  printf '%-8s %9s KiB %9s KiB %12s KiB\n' "$kind" "$before" "$with" \
    "$(awk -v a="$before" -v b="$with" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }')"
  kill "$holder" "$server"
  wait "$holder" "$server" 2>/dev/null || true
  holder=""
  server=""
done
