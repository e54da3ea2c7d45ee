#!/usr/bin/env bash
# Soak: millions of requests against a release build on 127.0.0.1, then checks that resident
# memory and open descriptors are back where they were after warm-up, that no request failed,
# and that SIGTERM still drains to exit 0. Prints its figures; stops by itself.
#
#   bench/soak.sh                               # 60 s warm-up, 90 s soak, 64 connections
#   SOAK_SECONDS=300 SOAK_CONNECTIONS=256 bench/soak.sh
#
# Needs wrk (`apt-get install -y wrk`). Honours CARGO_TARGET_DIR. Traffic goes to 127.0.0.1
# only. Exits 1 if a check fails, 2 if it cannot run. A copy of the figures goes to
# bench/results/ (ignored by git).
set -euo pipefail

# A minute: glibc malloc's per-thread arenas grow for about that long at full load, then hold.
warm_seconds=${SOAK_WARM_SECONDS:-60}
soak_seconds=${SOAK_SECONDS:-90}
connections=${SOAK_CONNECTIONS:-64}
threads=${SOAK_THREADS:-2}
# End RSS may exceed warm RSS by this much: allocator caches settle, leaks keep climbing.
rss_slack_pct=${SOAK_RSS_SLACK_PCT:-10}
rss_slack_kib=${SOAK_RSS_SLACK_KIB:-1024}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v wrk >/dev/null || { echo "soak: wrk not found (apt-get install -y wrk)" >&2; exit 2; }

work=$(mktemp -d)
pid=
sampler=
cleanup() {
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "soak: building the release binary" >&2
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/hyper-cloudrun"

PORT=0 LOG_FORMAT=json RUST_LOG=info SHUTDOWN_GRACE=8s "$bin" >"$work/server.log" 2>&1 &
pid=$!
port=
for _ in $(seq 100); do
  port=$(grep -o '"port":[0-9]*' "$work/server.log" | head -n1 | cut -d: -f2 || true)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "soak: no listening line:" >&2; cat "$work/server.log" >&2; exit 2; }
url="http://127.0.0.1:$port"

# Half GET /, half POST /echo with a 1 KiB body, requests prebuilt per wrk thread.
cat >"$work/mix.lua" <<'EOF'
local reqs, n = {}, 0
function init(args)
  reqs[1] = wrk.format("GET", "/")
  reqs[2] = wrk.format("POST", "/echo", { ["Content-Type"] = "application/octet-stream" },
    string.rep("0123456789abcdef", 64))
end
function request()
  n = n + 1
  return reqs[n % 2 + 1]
end
EOF

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
# The figures once wrk's connections are gone (the server sees their close within ms).
settle() { sleep 1; }

# wrk -d is the bound; `timeout` catches a wrk that would not stop.
run_wrk() {
  timeout $(($1 + 30)) wrk --latency --timeout 2s -t "$threads" -c "$connections" -d "${1}s" \
    -s "$work/mix.lua" "$url"
}

echo "soak: warm-up ${warm_seconds}s on $url" >&2
run_wrk "$warm_seconds" >"$work/warm.txt"
settle
rss_warm=$(rss)
fds_warm=$(fds)

# Peak RSS and descriptors while under load, sampled every half second, and RSS every 10 s
# for the trend: a leak climbs to the end, allocator caches level off.
(
  peak_rss=0 peak_fds=0 ticks=0
  while kill -0 "$pid" 2>/dev/null; do
    r=$(rss 2>/dev/null || echo 0) f=$(fds 2>/dev/null || echo 0)
    [ "$r" -gt "$peak_rss" ] && peak_rss=$r
    [ "$f" -gt "$peak_fds" ] && peak_fds=$f
    echo "$peak_rss $peak_fds" >"$work/peak"
    [ $((ticks % 20)) -eq 0 ] && printf '%s ' "$r" >>"$work/trend"
    ticks=$((ticks + 1))
    sleep 0.5
  done
) &
sampler=$!

echo "soak: ${soak_seconds}s, $connections connections, $threads wrk threads" >&2
run_wrk "$soak_seconds" >"$work/soak.txt"
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=
settle
rss_end=$(rss)
fds_end=$(fds)
read -r rss_peak fds_peak <"$work/peak" || { rss_peak=$rss_end; fds_peak=$fds_end; }

term_ns=$(date +%s%N)
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
exit_ms=$((($(date +%s%N) - term_ns) / 1000000))

requests=$(awk '/requests in/ { print $1 }' "$work/soak.txt")
rps=$(awk '/^Requests\/sec/ { print $2 }' "$work/soak.txt")
p50=$(awk '$1 == "50%" { print $2 }' "$work/soak.txt")
p99=$(awk '$1 == "99%" { print $2 }' "$work/soak.txt")
non2xx=$(awk '/Non-2xx/ { print $NF }' "$work/soak.txt")
errors=$(awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$work/soak.txt")
rss_limit=$((rss_warm + rss_warm * rss_slack_pct / 100 + rss_slack_kib))

failures=0
check() { # name, then the command that must succeed
  local name=$1
  shift
  if "$@"; then echo "  ok    $name"; else echo "  FAIL  $name"; failures=$((failures + 1)); fi
}
no_failed_request() { [ "${non2xx:-0}" -eq 0 ] && [ "${errors:-0}" -eq 0 ]; }

{
  echo "soak $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cpus, wrk -t$threads -c$connections, ${warm_seconds}s warm-up + ${soak_seconds}s"
  echo "  requests        ${requests} (${rps}/s), latency p50 ${p50}, p99 ${p99}"
  echo "  rss KiB         warm ${rss_warm}, peak ${rss_peak}, end ${rss_end} (limit ${rss_limit})"
  echo "  rss every 10 s  $(cat "$work/trend" 2>/dev/null)"
  echo "  open fds        warm ${fds_warm}, peak ${fds_peak}, end ${fds_end}"
  echo "  non-2xx ${non2xx:-0}, socket errors ${errors:-0}; SIGTERM to exit ${exit_ms} ms, status ${status}"
  check "no failed request" no_failed_request
  check "rss end within ${rss_slack_pct}% + ${rss_slack_kib} KiB of warm" test "$rss_end" -le "$rss_limit"
  check "no descriptor growth" test "$fds_end" -le "$fds_warm"
  check "SIGTERM drains to exit 0" test "$status" -eq 0
} >"$work/report"
cat "$work/report"
mkdir -p bench/results
cp "$work/report" "bench/results/soak-$(date -u +%Y%m%dT%H%M%SZ).txt"
[ "$failures" -eq 0 ]
