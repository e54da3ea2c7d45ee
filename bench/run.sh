#!/usr/bin/env bash
# Races hyper-cloudrun, as the image ships it (static musl, built by .ci/musl-build) and as a
# static glibc build, against the peers in bench/peers (the article's actix-web server, an axum
# one, and nginx as the kernel's floor when it is installed) on one CPU and on two, side by side
# in one run, and prints one table.
#
#   bench/run.sh            full run (~5 min once built; building the peers the first time adds
#                           several minutes)
#   bench/run.sh --quick    short run, same table, fewer rounds (~1 min once built)
#
# Per server: stripped static binary size (raw and gzip -9); cold start, exec to the first 200
# on GET / (median and p90); idle and peak RSS; HTTP/1.1 throughput and p99 with wrk at 64 and
# 256 connections (interleaved rounds, medians, and each round's ratio to each peer); h2c
# throughput and p99 with h2load -c 64 -m 10; the server's CPU time per request (user + system,
# steadier than req/s on a shared machine); the same c=64 run with server and wrk both on two
# CPUs (our multi-thread runtime); user-space instructions per keep-alive GET / under
# callgrind; for our two builds, POST /echo with 1 MB bodies over h2c (MB/s and peak RSS).
# The server runs on CPU 0, every client on CPU 1, except in the two-CPU runs.
#
# Environment (all optional):
#   BENCH_PEERS_DIR   peers to race (default: bench/peers): each directory with a Cargo.toml,
#                     and nginx/nginx.conf when `nginx` is installed; the project's own figures
#                     need none
#   BENCH_WORK_DIR    cargo target dirs, binaries, logs (default /tmp/hyper-cloudrun-bench)
#   BENCH_PORT        first of the loopback ports used (default 28080; 8 consecutive ports)
#   BENCH_ROUNDS, BENCH_SECONDS, BENCH_STARTS   override the wrk rounds, seconds per wrk run,
#                     and cold starts per server
#   BENCH_ONLY        space-separated names to race (e.g. "hyper-cloudrun hyper-cloudrun-musl")
#
# Needs: cargo and rustc (rust-toolchain.toml), .ci/musl-build's toolchain (it installs it as
# root), and the Debian packages wrk, nghttp2-client
# (h2load), valgrind, util-linux (taskset), gzip, binutils (strip). Missing packages are
# installed with apt-get when running as root, otherwise the script says what to install.
# nginx is optional and never installed by this script.
# Talks only to 127.0.0.1 and kills every server it started, however it ends.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=0
case "${1:-}" in
--quick) QUICK=1 ;;
"") ;;
*)
	echo "usage: bench/run.sh [--quick]" >&2
	exit 64
	;;
esac

PEERS_DIR=${BENCH_PEERS_DIR:-$ROOT/bench/peers}
WORK=${BENCH_WORK_DIR:-/tmp/hyper-cloudrun-bench}
PORT0=${BENCH_PORT:-28080}
TARGET=x86_64-unknown-linux-gnu
SERVER_CPU=0
CLIENT_CPU=1
if ((QUICK)); then
	ROUNDS=${BENCH_ROUNDS:-2} SECONDS_PER_RUN=${BENCH_SECONDS:-2} STARTS=${BENCH_STARTS:-10}
	H2_ROUNDS=1 CG_N1=100 CG_N2=600 CG_H2_N1=500 CG_H2_N2=2500 ROUNDS2=1 ECHO_ROUNDS=1 ECHO_N=500
else
	# Short runs, many rounds: on a shared machine the pairs then see the same neighbours.
	ROUNDS=${BENCH_ROUNDS:-9} SECONDS_PER_RUN=${BENCH_SECONDS:-3} STARTS=${BENCH_STARTS:-30}
	H2_ROUNDS=3 CG_N1=200 CG_N2=2200 CG_H2_N1=1000 CG_H2_N2=6000 ROUNDS2=5 ECHO_ROUNDS=3 ECHO_N=2000
fi
RESULTS=$ROOT/bench/results
mkdir -p "$WORK/bin" "$WORK/logs" "$RESULTS"

say() { printf '== %s\n' "$*" >&2; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

# --- every process we start is killed on the way out -------------------------------------------
declare -A LIVE # pids of servers still running
cleanup() {
	local pid
	for pid in "${!LIVE[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools --------------------------------------------------------------------------------------
need_pkgs=()
for pair in wrk:wrk h2load:nghttp2-client valgrind:valgrind taskset:util-linux gzip:gzip strip:binutils; do
	command -v "${pair%%:*}" >/dev/null || need_pkgs+=("${pair#*:}")
done
if ((${#need_pkgs[@]})); then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		say "installing ${need_pkgs[*]}"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
	else
		die "missing tools; install them with: sudo apt-get install -y ${need_pkgs[*]}"
	fi
fi
if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then
	die "cargo and rustc are needed (see rust-toolchain.toml)"
fi
NCPU=$(nproc)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_START=$(ps -eo pcpu=,comm= --sort=-pcpu | awk '$1 >= 5 {printf "%s%s %s%%", (n++ ? ", " : ""), $2, $1} END {if (!n) print "none above 5%"}')
if ((NCPU < 2)); then
	say "only $NCPU CPU: server and clients share CPU 0, figures are not comparable to a 2-CPU run"
	CLIENT_CPU=0
fi
ON_CLIENT=(taskset -c "$CLIENT_CPU")

# --- build --------------------------------------------------------------------------------------
# The same static glibc build for everyone, as in bench/peers/README.md.
build() { # dir target-dir
	(cd "$1" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
		--target "$TARGET" --target-dir "$2" 2>"$WORK/logs/build-$(basename "$2").log") ||
		die "build of $1 failed, see $WORK/logs/build-$(basename "$2").log"
}
bin_name() { sed -n 's/^name *= *"\(.*\)"/\1/p' "$1/Cargo.toml" | head -1; }

NAMES=(hyper-cloudrun)
declare -A SRC BIN
SRC[hyper-cloudrun]=$ROOT
if [[ -d $PEERS_DIR ]]; then
	for dir in "$PEERS_DIR"/*/; do
		[[ -f $dir/Cargo.toml ]] && NAMES+=("$(basename "$dir")") && SRC[$(basename "$dir")]=${dir%/}
	done
else
	say "no peers at $PEERS_DIR: measuring hyper-cloudrun alone"
fi
for name in "${NAMES[@]}"; do
	say "building $name"
	# Our own build goes to this checkout's target/: cargo keys a path package's artifacts by
	# name and version, not by directory, so a target dir shared with another checkout of this
	# repository can hand back that checkout's binary as fresh.
	tdir=$WORK/target-$name
	[[ $name == hyper-cloudrun ]] && tdir=$ROOT/target/bench
	build "${SRC[$name]}" "$tdir"
	cp "$tdir/$TARGET/release/$(bin_name "${SRC[$name]}")" "$WORK/bin/$name"
	strip -s "$WORK/bin/$name"
	BIN[$name]=$WORK/bin/$name
done
# The binary the image ships: static musl, built with the stand-in toolchain (Debian's Rust
# 1.96, zig's musl 1.2.5) exactly as .ci/test builds it, `cargo auditable` included.
say "building hyper-cloudrun-musl (.ci/musl-build)"
musl_bin=$("$ROOT/.ci/musl-build" 2>"$WORK/logs/build-musl.log" | tail -n 1) ||
	die "musl build failed, see $WORK/logs/build-musl.log"
cp "$musl_bin" "$WORK/bin/hyper-cloudrun-musl"
strip -s "$WORK/bin/hyper-cloudrun-musl"
BIN[hyper-cloudrun-musl]=$WORK/bin/hyper-cloudrun-musl
NAMES=(hyper-cloudrun hyper-cloudrun-musl "${NAMES[@]:1}")
# nginx, when installed: where the kernel stops any server on loopback. Not a Rust binary, so it
# has no size, cold start or instruction count here; it takes part in every load run.
declare -A FLOOR
NGINX_CONF=$PEERS_DIR/nginx/nginx.conf
if [[ -f $NGINX_CONF ]] && command -v nginx >/dev/null; then
	# A launcher keeping the other servers' contract (PORT from the environment; exec, so the pid
	# measured is nginx's): the config's listen port replaced, its files in the work directory.
	# shellcheck disable=SC2016 # the launcher expands $PORT and $dir, not this script
	{
		echo '#!/usr/bin/env bash'
		echo 'set -euo pipefail'
		printf 'dir=%q/nginx-"${PORT:?}"\n' "$WORK"
		echo 'mkdir -p "$dir/logs" "$dir/tmp"'
		printf 'sed -E "s/listen 127\\.0\\.0\\.1:[0-9]+/listen 127.0.0.1:$PORT/" %q >"$dir/nginx.conf"\n' "$NGINX_CONF"
		printf 'exec %q -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"\n' "$(command -v nginx)"
	} >"$WORK/bin/nginx"
	chmod +x "$WORK/bin/nginx"
	BIN[nginx]=$WORK/bin/nginx
	FLOOR[nginx]=1
	NAMES+=(nginx)
elif [[ -f $NGINX_CONF ]]; then
	say "no nginx installed: racing without the loopback floor (Debian: apt-get install nginx-light)"
fi
if [[ -n ${BENCH_ONLY:-} ]]; then
	read -ra NAMES <<<"$BENCH_ONLY"
	for name in "${NAMES[@]}"; do [[ -n ${BIN[$name]:-} ]] || die "BENCH_ONLY: no server $name"; done
fi
OURS=(hyper-cloudrun hyper-cloudrun-musl)
HARNESS=$WORK/bin/harness
rustc --edition 2024 -O "$ROOT/bench/harness.rs" -o "$HARNESS"
PEERS=()
for name in "${NAMES[@]}"; do [[ $name == hyper-cloudrun* ]] || PEERS+=("$name"); done

# --- helpers ------------------------------------------------------------------------------------
# Statistics over one number per line on stdin.
finite() { awk '$1 != "" && $1 != "nan"'; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
pct() { sort -g | awk -v p="$1" '{v[NR]=$1} END {if (NR==0) {print "nan"; exit} i=int(NR*p/100+0.999999); if (i<1) i=1; print v[i]}'; }
fmt() { awk -v x="$1" -v f="$2" 'BEGIN {if (x=="nan" || x=="") print "n/a"; else printf f, x}'; }
mb() { awk -v x="$1" -v f="$2" 'BEGIN {if (x=="nan" || x=="") print "n/a"; else printf f " MB", x/1e6}'; } # bytes -> MB
ratio() { awk -v a="${1:-nan}" -v b="${2:-nan}" 'BEGIN {if (a=="nan" || b=="nan" || b==0) print "nan"; else printf "%.3f\n", a/b}'; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
declare -A PORT PID
start_server() { # name port [cpus]
	port_free "$2" || die "port $2 is in use (set BENCH_PORT)"
	PORT=$2 taskset -c "${3:-$SERVER_CPU}" "${BIN[$1]}" >"$WORK/logs/$1.log" 2>&1 &
	PID[$1]=$!
	LIVE[$!]=1
	PORT[$1]=$2
	"${ON_CLIENT[@]}" "$HARNESS" wait "$2" 10 || die "$1 did not answer on port $2"
}
stop() { # pid: SIGTERM, then SIGKILL after 30 s
	if kill -TERM "$1" 2>/dev/null; then
		for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
	unset 'LIVE[$1]'
}
rss_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
rss_last() { awk '{print $NF}' <<<"$1"; }

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time of a process

# wrk: "Requests/sec: N", the 99% latency line in ms, and the server's CPU time per request in
# µs (user + system from /proc: unlike req/s, hardly moved by neighbours taking the CPU).
wrk_run() { # pid port connections seconds [client cpus] -> "req/s p99_ms cpu_us_per_req"
	local before after
	before=$(cpu_ticks "$1")
	taskset -c "${5:-$CLIENT_CPU}" wrk -t1 -c"$3" -d"$4"s --latency "http://127.0.0.1:$2/" >"$WORK/logs/wrk.txt" 2>&1 || true
	after=$(cpu_ticks "$1")
	awk -v t=$((after - before)) -v hz="$CLK_TCK" '
		/Requests\/sec:/ {rps=$2}
		/requests in/ {n=$1}
		$1=="99%" {v=$2; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
			ms = (u=="us") ? v/1000 : (u=="s") ? v*1000 : v}
		END {printf "%s %s %s\n", (rps=="" ? "nan" : rps), (ms=="" ? "nan" : ms),
			(n>0 ? t/hz*1e6/n : "nan")}' "$WORK/logs/wrk.txt"
}

# h2load with prior knowledge; p99 from its per-request log (3rd column, microseconds).
h2_run() { # port seconds -> "req/s p99_ms" (nan if the server does not speak h2c)
	local log=$WORK/logs/h2load.log out ok
	rm -f "$log"
	out=$("${ON_CLIENT[@]}" h2load -c 64 -m 10 -t 1 -D "$2" --log-file="$log" "http://127.0.0.1:$1/" 2>&1 || true)
	ok=$(awk '/^requests:/ {print $8}' <<<"$out")
	if [[ -z $ok || $ok == 0 || ! -s $log ]]; then
		echo "nan nan"
		return
	fi
	printf '%s %s\n' "$(awk '/^finished in/ {print $4}' <<<"$out")" \
		"$(awk '$2==200 {print $3/1000}' "$log" | pct 99)"
}

# --- 1. size ------------------------------------------------------------------------------------
declare -A SIZE GZ
for name in "${NAMES[@]}"; do
	if [[ -n ${FLOOR[$name]:-} ]]; then SIZE[$name]='' GZ[$name]='' && continue; fi
	SIZE[$name]=$(stat -c %s "${BIN[$name]}")
	GZ[$name]=$(gzip -9 -c "${BIN[$name]}" | wc -c)
done

# --- 2. cold start ------------------------------------------------------------------------------
# Starts alternate between the servers, so that each pair saw the same moment of the machine.
declare -A COLD50 COLD90 COLDS
say "cold start: $STARTS starts of each server, alternating"
for name in "${NAMES[@]}"; do : >"$WORK/logs/cold-$name.txt"; done
for _ in $(seq "$STARTS"); do
	for name in "${NAMES[@]}"; do
		[[ -n ${FLOOR[$name]:-} ]] && continue
		port_free "$PORT0" || die "port $PORT0 is in use (set BENCH_PORT)"
		"${ON_CLIENT[@]}" "$HARNESS" coldstart 1 "$PORT0" "$SERVER_CPU" "${BIN[$name]}" >>"$WORK/logs/cold-$name.txt"
	done
done
for name in "${NAMES[@]}"; do
	COLDS[$name]=$(awk '{printf "%s ", $1/1000}' "$WORK/logs/cold-$name.txt")
	COLD50[$name]=$(awk '{print $1/1000}' "$WORK/logs/cold-$name.txt" | median)
	COLD90[$name]=$(awk '{print $1/1000}' "$WORK/logs/cold-$name.txt" | pct 90)
done

# --- 3. load: every server up at once, idle ones cost nothing -----------------------------------
declare -A IDLE PEAK
i=1
for name in "${NAMES[@]}"; do
	start_server "$name" $((PORT0 + i))
	i=$((i + 1))
done
sleep 1
for name in "${NAMES[@]}"; do IDLE[$name]=$(rss_kb "${PID[$name]}" VmRSS); done

say "warm-up"
for name in "${NAMES[@]}"; do wrk_run "${PID[$name]}" "${PORT[$name]}" 256 1 >/dev/null; done

declare -A RPS P99 CPU # key: name,conc -> one value per round, space-separated
for round in $(seq "$ROUNDS"); do
	for conc in 64 256; do
		# Rotate who goes first so no server always follows the same one.
		order=("${NAMES[@]:$(((round - 1) % ${#NAMES[@]}))}" "${NAMES[@]:0:$(((round - 1) % ${#NAMES[@]}))}")
		for name in "${order[@]}"; do
			read -r rps p99 cpu < <(wrk_run "${PID[$name]}" "${PORT[$name]}" "$conc" "$SECONDS_PER_RUN")
			RPS[$name,$conc]+="$rps "
			P99[$name,$conc]+="$p99 "
			CPU[$name,$conc]+="$cpu "
			say "round $round/$ROUNDS c=$conc $name: $rps req/s, p99 $p99 ms, $cpu µs CPU/req"
		done
	done
done

declare -A H2RPS H2P99
H2_SECONDS=$((QUICK ? 2 : 5))
for name in "${NAMES[@]}"; do h2_run "${PORT[$name]}" 1 >/dev/null; done # warm-up
for round in $(seq "$H2_ROUNDS"); do
	for name in "${NAMES[@]}"; do
		read -r rps p99 < <(h2_run "${PORT[$name]}" "$H2_SECONDS")
		H2RPS[$name]+="$rps "
		H2P99[$name]+="$p99 "
		say "h2c round $round/$H2_ROUNDS $name: $rps req/s, p99 $p99 ms"
	done
done
for name in "${NAMES[@]}"; do
	PEAK[$name]=$(rss_kb "${PID[$name]}" VmHWM)
	stop "${PID[$name]}"
done

# --- 3b. two CPUs: server and wrk both on CPUs 0-1 (our runtime then runs multi-thread) ---------
declare -A RPS2 CPU2
if ((NCPU >= 2)); then
	i=1
	for name in "${NAMES[@]}"; do
		start_server "$name" $((PORT0 + i)) 0,1
		i=$((i + 1))
	done
	for name in "${NAMES[@]}"; do wrk_run "${PID[$name]}" "${PORT[$name]}" 64 1 0,1 >/dev/null; done
	for round in $(seq "$ROUNDS2"); do
		order=("${NAMES[@]:$(((round - 1) % ${#NAMES[@]}))}" "${NAMES[@]:0:$(((round - 1) % ${#NAMES[@]}))}")
		for name in "${order[@]}"; do
			read -r rps _ cpu < <(wrk_run "${PID[$name]}" "${PORT[$name]}" 64 "$SECONDS_PER_RUN" 0,1)
			RPS2[$name]+="$rps "
			CPU2[$name]+="$cpu "
			say "two CPUs round $round/$ROUNDS2 c=64 $name: $rps req/s, $cpu µs CPU/req"
		done
	done
	for name in "${NAMES[@]}"; do stop "${PID[$name]}"; done
fi

# --- 3c. POST /echo with 1 MB bodies over h2c: our two builds, a fresh server per round ---------
# h2load -c 10 -m 20: 200 bodies in flight. MB/s counts the 2xx answers' bodies (each one
# uploaded and sent back); peak RSS is the server's VmHWM after the round.
declare -A ECHO_MBS ECHO_PEAK
BODY=$WORK/body-1MB
head -c 1000000 /dev/zero | tr '\0' 'x' >"$BODY"
for round in $(seq "$ECHO_ROUNDS"); do
	for name in "${NAMES[@]}"; do
		[[ $name == hyper-cloudrun* ]] || continue
		start_server "$name" $((PORT0 + 6))
		out=$("${ON_CLIENT[@]}" h2load -n "$ECHO_N" -c 10 -m 20 -t 1 -d "$BODY" \
			-H 'content-type: application/octet-stream' "http://127.0.0.1:$((PORT0 + 6))/echo" 2>&1 || true)
		ECHO_PEAK[$name]+="$(rss_kb "${PID[$name]}" VmHWM) "
		stop "${PID[$name]}"
		# "finished in 3.04s," or "finished in 708.84ms,"; 2xx answers carry 1 MB each, the
		# rest are 503s from the body budget (BODY_BUDGET).
		mbs=$(awk '/^finished in/ {t=$3; sub(/,$/, "", t); if (t ~ /ms$/) {sub(/ms$/, "", t); t /= 1000} else sub(/s$/, "", t)}
			/^status codes:/ {ok=$3}
			END {if (t > 0 && ok > 0) printf "%.0f", ok / t; else print "nan"}' <<<"$out")
		say "echo 1 MB round $round/$ECHO_ROUNDS $name: $(grep '^status codes:' <<<"$out")"
		ECHO_MBS[$name]+="$mbs "
		say "echo 1 MB round $round/$ECHO_ROUNDS $name: $mbs MB/s, peak RSS $(rss_last "${ECHO_PEAK[$name]}") kB"
	done
done

med_of() { tr ' ' '\n' <<<"$1" | finite | median; }
# Median of the per-round ratios of two space-separated series (round k against round k: each
# pair of runs saw the same neighbours on this machine).
paired() {
	local -a xs ys
	local k
	read -ra xs <<<"$1"
	read -ra ys <<<"$2"
	for k in "${!xs[@]}"; do ratio "${xs[$k]}" "${ys[$k]:-nan}"; done | finite | median
}
# "lo–hi×": the smallest and largest per-round ratio, to show how far one round can stray.
paired_range() {
	local -a xs ys
	local k
	read -ra xs <<<"$1"
	read -ra ys <<<"$2"
	for k in "${!xs[@]}"; do ratio "${xs[$k]}" "${ys[$k]:-nan}"; done | finite | sort -g |
		awk 'NR==1 {lo=$1} {hi=$1} END {if (NR) printf "%.2f–%.2f×\n", lo, hi; else print "n/a"}'
}
cold_cell() { # "p50 / p90 ms", or n/a for a server without cold starts (nginx)
	if [[ ${COLD50[$1]} == nan ]]; then echo n/a; else echo "$(fmt "${COLD50[$1]}" '%.2f') / $(fmt "${COLD90[$1]}" '%.2f') ms"; fi
}
h2_p99_cell() {
	local h2
	h2=$(med_of "${H2P99[$1]}")
	if [[ $h2 == nan ]]; then echo "n/a (no h2c)"; else fmt "$h2" '%.2f ms'; fi
}

# --- 4. instructions per request (callgrind) ----------------------------------------------------
declare -A IR
# Clients for one server under callgrind: PORT N -> success once N requests were answered.
cg_keepalive() { "${ON_CLIENT[@]}" "$HARNESS" keepalive "$1" "$2"; }
cg_h2c() { # h2load, 4 connections × 10 streams
	local ok
	ok=$("${ON_CLIENT[@]}" h2load -n "$2" -c 4 -m 10 -t 1 "http://127.0.0.1:$1/" 2>&1 |
		awk '/^requests:/ {print $8}')
	[[ $ok == "$2" ]]
}
cg_total() { # name client n -> total Ir of start-up + n requests from client, or nan if it failed
	local out=$WORK/logs/callgrind-$2-$1-$3.out port=$((PORT0 + 7)) pid ok=0
	port_free "$port" || die "port $port is in use (set BENCH_PORT)"
	PORT=$port taskset -c "$SERVER_CPU" valgrind --tool=callgrind --callgrind-out-file="$out" \
		"${BIN[$1]}" >"${out%.out}.log" 2>&1 &
	pid=$!
	LIVE[$pid]=1
	"${ON_CLIENT[@]}" "$HARNESS" wait "$port" 60 || die "$1 did not start under valgrind"
	"$2" "$port" "$3" && ok=1
	stop "$pid" # callgrind writes its totals at exit
	if ((ok)); then awk '/^(summary|totals):/ {print $2; exit}' "$out"; else echo nan; fi
}
per_request() { # name client n1 n2 -> (total at n2 - total at n1) / (n2 - n1), or nan
	local a b
	a=$(cg_total "$1" "$2" "$3")
	b=$(cg_total "$1" "$2" "$4")
	awk -v a="$a" -v b="$b" -v n=$(($4 - $3)) 'BEGIN {if (a=="nan" || b=="nan") print "nan"; else printf "%.0f", (b-a)/n}'
}
for name in "${NAMES[@]}"; do
	IR[$name]=nan
	[[ -n ${FLOOR[$name]:-} ]] && continue
	say "callgrind: $name, $CG_N1 and $CG_N2 keep-alive requests"
	IR[$name]=$(per_request "$name" cg_keepalive "$CG_N1" "$CG_N2")
	[[ ${IR[$name]} == nan ]] && die "keep-alive client failed against $name under callgrind"
done

# The same for h2c, for the servers that speak it.
declare -A IR2
for name in "${NAMES[@]}"; do
	IR2[$name]=nan
	[[ $(med_of "${H2RPS[$name]}") == nan ]] && continue
	say "callgrind: $name, $CG_H2_N1 and $CG_H2_N2 h2c requests"
	IR2[$name]=$(per_request "$name" cg_h2c "$CG_H2_N1" "$CG_H2_N2")
done

# --- report -------------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
	echo "## Benchmark: hyper-cloudrun (musl as shipped, and glibc) vs peers"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%MZ), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+changes'); \`nproc\` = $NCPU, $CPU_MODEL; kernel $(uname -r); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Server pinned to CPU $SERVER_CPU, wrk/h2load/clients to CPU $CLIENT_CPU (the 2-CPU columns: both on CPUs 0-1); stripped static builds: glibc with the pinned toolchain for all, and hyper-cloudrun-musl as the image ships it (.ci/musl-build: Debian's Rust $(/usr/bin/rustc --version 2>/dev/null | cut -d' ' -f2), zig's musl)."
	echo "Load average at the start $LOAD_START; processes using CPU then: $BUSY_START"
	echo "$([[ $QUICK == 1 ]] && echo 'Quick run: ')wrk -t1, ${SECONDS_PER_RUN} s per run, $ROUNDS interleaved rounds (medians); h2load -c 64 -m 10 -t 1, $H2_ROUNDS × ${H2_SECONDS} s; $STARTS cold starts; callgrind over $CG_N1 and $CG_N2 keep-alive GET /, and $CG_H2_N1 and $CG_H2_N2 h2c GET /; 2 CPUs: $ROUNDS2 rounds of wrk -t1 -c64; echo: $ECHO_ROUNDS × h2load -n $ECHO_N -c 10 -m 20 with 1 MB bodies (medians)."
	echo
	echo "| server | binary | gzip -9 | cold start p50 / p90 | idle RSS | peak RSS | c=64 req/s | c=64 p99 | c=256 req/s | c=256 p99 | CPU/req c=64 | 2 CPUs: c=64 req/s | 2 CPUs: CPU/req | h2c req/s | h2c p99 | instr/req | h2c instr/req | echo 1 MB | echo peak RSS |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	for name in "${NAMES[@]}"; do
		printf '| %s | %s | %s | %s | %s MB | %s MB | %s | %s ms | %s | %s ms | %s µs | %s | %s µs | %s | %s | %s | %s | %s | %s |\n' \
			"$name" "$(mb "${SIZE[$name]}" '%.2f')" "$(mb "${GZ[$name]}" '%.3f')" \
			"$(cold_cell "$name")" \
			"$(awk -v x="${IDLE[$name]}" 'BEGIN {printf "%.1f", x/1024}')" \
			"$(awk -v x="${PEAK[$name]}" 'BEGIN {printf "%.1f", x/1024}')" \
			"$(fmt "$(med_of "${RPS[$name,64]}")" '%.0f')" "$(fmt "$(med_of "${P99[$name,64]}")" '%.2f')" \
			"$(fmt "$(med_of "${RPS[$name,256]}")" '%.0f')" "$(fmt "$(med_of "${P99[$name,256]}")" '%.2f')" \
			"$(fmt "$(med_of "${CPU[$name,64]}")" '%.1f')" \
			"$(fmt "$(med_of "${RPS2[$name]:-}")" '%.0f')" "$(fmt "$(med_of "${CPU2[$name]:-}")" '%.1f')" \
			"$(fmt "$(med_of "${H2RPS[$name]}")" '%.0f')" \
			"$(h2_p99_cell "$name")" \
			"$(fmt "${IR[$name]}" '%.0f')" "$(fmt "${IR2[$name]}" '%.0f')" \
			"$(fmt "$(med_of "${ECHO_MBS[$name]:-}")" '%.0f MB/s')" \
			"$(fmt "$(med_of "${ECHO_PEAK[$name]:-}" | awk '$1 != "nan" {print $1/1024; next} {print}')" '%.0f MB')"
	done
	PAIRS=()
	[[ -n ${SIZE[hyper-cloudrun-musl]:-} && -n ${SIZE[hyper-cloudrun]:-} ]] && PAIRS+=("hyper-cloudrun-musl hyper-cloudrun")
	for ours in "${OURS[@]}"; do
		[[ -n ${SIZE[$ours]:-} ]] || continue
		for peer in "${PEERS[@]}"; do PAIRS+=("$ours $peer"); done
	done
	if ((${#PAIRS[@]})); then
		echo
		echo "Ratios (req/s, p99, CPU/req and cold start: median of the per-round ratios; the rest: ratio of the figures above):"
		echo
		echo "| ours ÷ other | c=64 req/s | c=64 p99 | c=256 req/s | c=256 p99 | CPU/req c=64 | 2 CPUs: req/s | 2 CPUs: CPU/req | h2c req/s | instr/req | h2c instr/req | gzip -9 | cold start p50 | idle RSS | peak RSS | echo MB/s | echo peak RSS |"
		echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
		for pair in "${PAIRS[@]}"; do
			read -r a b <<<"$pair"
			row="| $a ÷ $b"
			for conc in 64 256; do
				row+=" | $(fmt "$(paired "${RPS[$a,$conc]}" "${RPS[$b,$conc]}")" '%.2f×')"
				row+=" | $(fmt "$(paired "${P99[$a,$conc]}" "${P99[$b,$conc]}")" '%.2f×')"
			done
			row+=" | $(fmt "$(paired "${CPU[$a,64]}" "${CPU[$b,64]}")" '%.2f×')"
			row+=" | $(fmt "$(paired "${RPS2[$a]:-}" "${RPS2[$b]:-}")" '%.2f×')"
			row+=" | $(fmt "$(paired "${CPU2[$a]:-}" "${CPU2[$b]:-}")" '%.2f×')"
			row+=" | $(fmt "$(ratio "$(med_of "${H2RPS[$a]}")" "$(med_of "${H2RPS[$b]}")")" '%.2f×')"
			row+=" | $(fmt "$(ratio "${IR[$a]}" "${IR[$b]}")" '%.2f×')"
			row+=" | $(fmt "$(ratio "${IR2[$a]}" "${IR2[$b]}")" '%.2f×')"
			row+=" | $(fmt "$(ratio "${GZ[$a]}" "${GZ[$b]}")" '%.2f×')"
			row+=" | $(fmt "$(paired "${COLDS[$a]}" "${COLDS[$b]}")" '%.2f×')"
			row+=" | $(fmt "$(ratio "${IDLE[$a]}" "${IDLE[$b]}")" '%.2f×')"
			row+=" | $(fmt "$(ratio "${PEAK[$a]}" "${PEAK[$b]}")" '%.2f×')"
			row+=" | $(fmt "$(paired "${ECHO_MBS[$a]:-}" "${ECHO_MBS[$b]:-}")" '%.2f×')"
			row+=" | $(fmt "$(paired "${ECHO_PEAK[$a]:-}" "${ECHO_PEAK[$b]:-}")" '%.2f×') |"
			echo "$row"
		done
	fi
	ACTIX=seed-actix
	if [[ -n ${SIZE[$ACTIX]:-} && -n ${SIZE[hyper-cloudrun-musl]:-} ]]; then
		ours=hyper-cloudrun-musl
		check() { # description ok(1/0) figures
			printf -- '- %s %s: %s\n' "$([[ $2 == 1 ]] && echo '✅' || echo '❌')" "$1" "$3"
		}
		r64=$(paired "${RPS[$ours,64]}" "${RPS[$ACTIX,64]}")
		p64=$(paired "${P99[$ours,64]}" "${P99[$ACTIX,64]}")
		p_o=$(med_of "${P99[$ours,64]}") p_a=$(med_of "${P99[$ACTIX,64]}")
		ir=$(ratio "${IR[$ours]}" "${IR[$ACTIX]}")
		h2=$(med_of "${H2P99[$ours]}")
		echo
		echo "Targets for the shipped build ($ours) against $ACTIX (the performance targets on one vCPU):"
		echo
		check "c=64 throughput ≥ 1.0×, median of $ROUNDS paired rounds" "$(awk -v r="$r64" 'BEGIN {print (r != "nan" && r >= 1.0)}')" "$(fmt "$r64" '%.2f×') (rounds $(paired_range "${RPS[$ours,64]}" "${RPS[$ACTIX,64]}"))"
		check "c=64 p99 no worse, median of the paired rounds' ratios ≤ 1.0" "$(awk -v r="$p64" 'BEGIN {print (r != "nan" && r <= 1.0)}')" "$(fmt "$p64" '%.2f×') (rounds $(paired_range "${P99[$ours,64]}" "${P99[$ACTIX,64]}"); medians $(fmt "$p_o" '%.2f') vs $(fmt "$p_a" '%.2f') ms)"
		check "instructions per request ≤ 0.6×" "$(awk -v r="$ir" 'BEGIN {print (r != "nan" && r <= 0.6)}')" "${IR[$ours]} vs ${IR[$ACTIX]} = $(fmt "$ir" '%.2f×')"
		check "h2c p99 ≤ 10 ms (h2load -c 64 -m 10)" "$(awk -v x="$h2" 'BEGIN {print (x != "nan" && x <= 10)}')" "$(fmt "$h2" '%.2f ms') (rounds: $(tr ' ' '\n' <<<"${H2P99[$ours]}" | finite | awk '{printf "%s%.2f", (NR>1 ? ", " : ""), $1}') ms)"
		cr=$(paired "${COLDS[$ours]}" "${COLDS[$ACTIX]}")
		check "cold start no worse, median of the paired starts' ratios ≤ 1.0" "$(awk -v r="$cr" 'BEGIN {print (r != "nan" && r <= 1.0)}')" "$(fmt "$cr" '%.2f×'); medians $(fmt "${COLD50[$ours]}" '%.2f') vs $(fmt "${COLD50[$ACTIX]}" '%.2f') ms"
		check "idle RSS no worse" "$(awk -v a="${IDLE[$ours]}" -v b="${IDLE[$ACTIX]}" 'BEGIN {print (a <= b)}')" "$(awk -v a="${IDLE[$ours]}" -v b="${IDLE[$ACTIX]}" 'BEGIN {printf "%.1f vs %.1f MB", a/1024, b/1024}')"
		check "static musl binary gzip -9 ≤ 0.75 MB" "$(awk -v x="${GZ[$ours]}" 'BEGIN {print (x <= 750000)}')" "${GZ[$ours]} bytes"
		[[ -n ${GZ[hyper-cloudrun]:-} ]] && check "static glibc binary gzip -9 ≤ 1.0 MB" "$(awk -v x="${GZ[hyper-cloudrun]}" 'BEGIN {print (x <= 1000000)}')" "${GZ[hyper-cloudrun]} bytes"
	fi
	echo
	echo "Reproduce: \`bench/run.sh$([[ $QUICK == 1 ]] && echo ' --quick')\` (peers from \`${PEERS_DIR#"$ROOT"/}\`)."
} | tee "$RESULTS/latest.md"
SUFFIX=
((QUICK)) && SUFFIX=-quick
STAMPED=$RESULTS/run-$(date -u +%Y%m%dT%H%MZ)$SUFFIX.md
cp "$RESULTS/latest.md" "$STAMPED"
echo >&2
say "written to ${RESULTS#"$ROOT"/}/latest.md and ${STAMPED#"$ROOT"/}"
