#!/usr/bin/env bash
# The Lambda build (`--features lambda`) as Lambda would run it, against Cargo Lambda's emulator
# of the Runtime API: `cargo lambda watch --only-lambda-apis` serves the Runtime API and function
# URLs on 127.0.0.1 without building anything, and the function is started with the variables
# Lambda sets — the binary itself, or with --image the container image (image-lambda) in Docker
# as Lambda runs one: read-only root, the image's own user and entrypoint, nothing else in its
# environment (host network, to reach the emulator on 127.0.0.1). Requests go in two ways: curl
# through the emulator's function URL (it builds the payload-2.0 event itself), and `cargo lambda
# invoke` with events written here in the shapes AWS documents: function URL / HTTP API (payload
# 2.0), REST API (1.0) and ALB. Binary bodies only go the second way: the emulator's function
# URL passes a request body on as UTF-8 text. (`cargo lambda invoke --data-example` downloads
# AWS's example events from the internet; the events here need no network.) Each check is one
# line; any failure exits 1 after all ran.
#
#   tests/lambda.sh BINARY
#   tests/lambda.sh --image TARBALL
#
# Needs cargo-lambda (PyPI `cargo-lambda`, which .ci/run installs into a virtualenv and puts on
# PATH through CARGO_LAMBDA), curl and python3; with --image, Docker (tests/docker.sh starts a
# daemon if none answers, and removes what the test added). The emulator reads the Cargo.toml of
# the directory it starts in, so it runs from the repository root. Loopback only; stops by
# itself.
# shellcheck disable=SC2016,SC2034 # checks are strings for eval, expanded there
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: tests/lambda.sh BINARY | tests/lambda.sh --image TARBALL (built with --features lambda)" >&2
  exit 64
}
image=""
case ${1:-} in
  --image)
    [ $# -eq 2 ] || usage
    image=$(realpath "$2")
    ;;
  "" | -*) usage ;;
  *)
    [ $# -eq 1 ] || usage
    bin=$(realpath "$1")
    ;;
esac
cargo_lambda=${CARGO_LAMBDA:-cargo-lambda}
for tool in "$cargo_lambda" curl python3; do
  command -v "$tool" >/dev/null || {
    echo "lambda: missing $tool: run .ci/run, or python3 -m venv VENV && VENV/bin/pip install cargo-lambda==1.9.2 and set CARGO_LAMBDA=VENV/bin/cargo-lambda" >&2
    exit 1
  }
done
if [ -n "$image" ]; then
  # shellcheck source=tests/docker.sh disable=SC1091
  . tests/docker.sh
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
  [ -z "$image" ] || docker_down
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=tests/tally.sh
. tests/tally.sh

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The emulator, once for the whole run; it queues invocations until a function asks for them.
port=$(free_port)
"$cargo_lambda" lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port" >"$work/emulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
  echo "lambda: the emulator did not start: $(cat "$work/emulator.log")" >&2
  exit 1
}
url=http://127.0.0.1:$port/lambda-url/_
# What Lambda sets for a custom runtime (the emulator prints the same list at start).
lambda_env=(
  AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt"
  AWS_LAMBDA_FUNCTION_NAME=_
  AWS_LAMBDA_FUNCTION_VERSION=1
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128
)

if [ -n "$image" ]; then
  docker_up || exit 1
  ref=$(tar -xzOf "$image" manifest.json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["RepoTags"][0])')
  docker_track "$ref"
  docker load -i "$image" >/dev/null
fi

# run NAME [VAR=VALUE…]: becomes the function, with an empty environment plus these: the
# binary, or `docker run` of a container of the image named $docker_prefix$NAME. It `exec`s, so
# call it as `run … &` (then $! is the function) or in a subshell.
run() {
  local name=$1
  shift
  if [ -z "$image" ]; then
    exec env -i "$@" "$bin"
  fi
  local vars=()
  for v in "$@"; do vars+=(-e "$v"); done
  # shellcheck disable=SC2154 # docker_prefix is tests/docker.sh's
  exec docker run --rm --name "$docker_prefix$name" --network host --read-only ${vars[@]+"${vars[@]}"} "$ref"
}
# signal NAME SIGNAL PID: what `kill -SIGNAL PID` is for the binary.
signal() {
  if [ -z "$image" ]; then
    kill "-$2" "$3" 2>/dev/null || true
  else
    docker kill --signal "$2" "$docker_prefix$1" >/dev/null 2>&1 || true
  fi
}

# start NAME [VAR=VALUE…]: the function as Lambda starts it, with Lambda's variables and these.
function=
function_name=
start() {
  local name=$1
  shift
  [ -z "$function" ] || stop
  run "$name" "${lambda_env[@]}" "$@" >"$work/$name.stdout" 2>"$work/$name.stderr" &
  function=$!
  function_name=$name
  pids+=("$function")
}
stop() {
  signal "$function_name" KILL "$function"
  wait "$function" 2>/dev/null || true
  function=
}

invoke() { # invoke EVENT-FILE: the function's answer as JSON on stdout
  timeout 30 "$cargo_lambda" lambda invoke -A 127.0.0.1 -P "$port" --data-file "$1" -o json
}

# --- events in the shapes AWS documents -----------------------------------------------------
# event KIND METHOD PATH [BODY-FILE [CONTENT-TYPE]]: writes an event and prints its file name.
# KIND: v2 (function URL and HTTP API, payload format 2.0), v2stage (an HTTP API stage named
# prod: API Gateway puts it in rawPath), v1 (REST API, stage prod, payload 1.0), alb (ALB
# target, no Host, as its health checks come). A body file is sent base64-encoded.
n=0
event() {
  n=$((n + 1))
  python3 - "$work/event-$n.json" "$@" <<'EOF'
import base64, json, sys
out, kind, method, path = sys.argv[1:5]
body_file = sys.argv[5] if len(sys.argv) > 5 else None
ctype = sys.argv[6] if len(sys.argv) > 6 else "application/octet-stream"
host = "abcdefg.lambda-url.eu-west-1.on.aws"
headers = {"host": host, "user-agent": "tests/lambda.sh"}
body, b64 = None, False
if body_file:
    with open(body_file, "rb") as f:
        body, b64 = base64.b64encode(f.read()).decode(), True
    headers["content-type"] = ctype
trace = "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=1"
if kind in ("v2", "v2stage"):
    ev = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
          "headers": headers,
          "requestContext": {"accountId": "123456789012", "apiId": "abcdefg",
                             "domainName": host, "domainPrefix": "abcdefg",
                             "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                      "sourceIp": "203.0.113.7", "userAgent": "tests/lambda.sh"},
                             "requestId": "req-v2", "routeKey": "$default",
                             "stage": "prod" if kind == "v2stage" else "$default",
                             "time": "06/Dec/2026:12:00:00 +0000", "timeEpoch": 1796558400000},
          "isBase64Encoded": b64}
elif kind == "v1":
    ev = {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": headers,
          "multiValueHeaders": {k: [v] for k, v in headers.items()},
          "queryStringParameters": None, "multiValueQueryStringParameters": None,
          "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
          "requestContext": {"accountId": "123456789012", "apiId": "abcdefg",
                             "resourceId": "r1", "resourcePath": "/{proxy+}",
                             "httpMethod": method, "path": "/prod" + path, "stage": "prod",
                             "requestId": "req-v1", "protocol": "HTTP/1.1",
                             "identity": {"sourceIp": "203.0.113.7"}},
          "isBase64Encoded": b64}
else:
    del headers["host"]
    ev = {"requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/t/0123456789abcdef"}},
          "httpMethod": method, "path": path, "queryStringParameters": {}, "headers": headers,
          "isBase64Encoded": b64}
if body is not None:
    ev["body"] = body
with open(out, "w") as f:
    json.dump(ev, f)
print(out)
EOF
}

# expect ANSWER-FILE PYTHON-EXPRESSION: the expression over `r` (the answer as JSON, with
# `r["_body"]` the body's bytes, base64-decoded when isBase64Encoded) must be true.
expect() {
  python3 - "$1" "$2" <<'EOF'
import base64, json, sys
r = json.load(open(sys.argv[1]))
raw = r.get("body") or ""
r["_body"] = base64.b64decode(raw) if r.get("isBase64Encoded") else raw.encode()
r["_headers"] = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
for k, v in (r.get("multiValueHeaders") or {}).items():
    r["_headers"].setdefault(k.lower(), ", ".join(v))
ok = eval(sys.argv[2])
if not ok:
    print("answer:", json.dumps(r, default=repr)[:2000])
    sys.exit(1)
EOF
}

invoke_expect() { # invoke_expect EVENT-FILE PYTHON-EXPRESSION
  local answer=$work/answer-$RANDOM.json
  invoke "$1" >"$answer" || {
    cat "$answer"
    return 1
  }
  expect "$answer" "$2"
}

# http METHOD PATH [CURL ARGS…]: through the function URL; status, headers and body to files.
http() {
  local method=$1 path=$2
  shift 2
  local body=$work/body
  : >"$body"
  # curl --head writes the head where the body would go, and reads no body.
  if [ "$method" = HEAD ]; then
    set -- --head "$@"
    body=/dev/null
  else
    set -- -X "$method" "$@"
  fi
  curl -sS --max-time 30 -o "$body" -D "$work/headers" -w '%{http_code}' "$@" "$url$path"
}
header() { # header NAME: its value in the last answer
  tr -d '\r' <"$work/headers" | sed -n "s/^$1: //Ip" | head -1
}

status_body() { # status_body METHOD PATH STATUS BODY [CURL ARGS…]
  local method=$1 path=$2 want_status=$3 want_body=$4 got
  shift 4
  got=$(http "$method" "$path" "$@")
  if [ "$got" != "$want_status" ] || [ "$(cat "$work/body")" != "$want_body" ]; then
    echo "got $got '$(head -c 200 "$work/body")', want $want_status '$want_body'"
    return 1
  fi
}

# --- through the function URL ------------------------------------------------------------------
start main RUST_LOG=debug
status_body GET /health 200 ok >/dev/null || {
  echo "lambda: the function does not answer: $(cat "$work/main.stderr")" >&2
  exit 1
}

greeting='Hello from Rust on Cloud Run!'
check "GET / -> 200 greeting, text/plain" eval 'status_body GET / 200 "$greeting" &&
  [ "$(header content-type)" = "text/plain; charset=utf-8" ]'
check "GET /health -> 200 ok, cache-control: no-store" eval 'status_body GET /health 200 ok &&
  [ "$(header cache-control)" = no-store ]'
check "HEAD / -> 200, the GET headers" eval 'status_body HEAD / 200 "" &&
  [ "$(header content-type)" = "text/plain; charset=utf-8" ] && [ "$(header content-length)" = 30 ]'
check "DELETE / -> 405, allow: GET, HEAD" eval 'status_body DELETE / 405 "method not allowed" &&
  [ "$(header allow)" = "GET, HEAD" ]'
check "GET /echo -> 405, allow: POST" eval 'status_body GET /echo 405 "method not allowed" &&
  [ "$(header allow)" = POST ]'
check "GET /nope -> 404" status_body GET /nope 404 "not found"
check "POST /echo text -> 200, same body and content type" eval \
  'status_body POST /echo 200 "héllo, lambda" --data-binary "héllo, lambda" -H "content-type: text/x-mine" &&
  [ "$(header content-type)" = text/x-mine ]'
head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' a >"$work/over"
check "POST /echo 1 MiB + 1 -> 413, no connection header" eval \
  'status_body POST /echo 413 "request body over 1 MiB" --data-binary @"$work/over" &&
  [ -z "$(header connection)" ]'

# --- cargo lambda invoke with events --------------------------------------------------------------
head -c 256 /dev/urandom >"$work/random"
check "function URL event: 256 random bytes echo back byte for byte (base64)" invoke_expect \
  "$(event v2 POST /echo "$work/random")" \
  'r["statusCode"] == 200 and r["isBase64Encoded"] and r["_body"] == open("'"$work/random"'", "rb").read()'
check "function URL event: HEAD / -> 200, content-length 30, empty body" invoke_expect \
  "$(event v2 HEAD /)" 'r["statusCode"] == 200 and r["_body"] == b"" and r["_headers"]["content-length"] == "30"'
check "function URL event: 256 random bytes sent as text/plain echo back byte for byte" invoke_expect \
  "$(event v2 POST /echo "$work/random" "text/plain; charset=utf-8")" \
  'r["statusCode"] == 200 and r["_body"] == open("'"$work/random"'", "rb").read() and r["_headers"]["content-type"] == "text/plain; charset=utf-8"'
check "REST API event: GET / -> 200 greeting" invoke_expect "$(event v1 GET /)" \
  'r["statusCode"] == 200 and r["_body"] == b"Hello from Rust on Cloud Run!\n" and "text/plain" in r["_headers"]["content-type"]'
check "HTTP API event, named stage: GET /prod/health -> 200 ok" invoke_expect \
  "$(event v2stage GET /prod/health)" 'r["statusCode"] == 200 and r["_body"] == b"ok\n"'
check "REST API event: 256 random bytes echo back byte for byte" invoke_expect \
  "$(event v1 POST /echo "$work/random")" \
  'r["statusCode"] == 200 and r["isBase64Encoded"] and r["_body"] == open("'"$work/random"'", "rb").read()'
check "ALB health check (no Host): GET /health -> 200 ok" invoke_expect "$(event alb GET /health)" \
  'r["statusCode"] == 200 and r["_body"] == b"ok\n"'
check "ALB event: PUT /health -> 405 with allow" invoke_expect "$(event alb PUT /health)" \
  'r["statusCode"] == 405 and r["_headers"]["allow"] == "GET, HEAD"'
check "function URL event: a 1 MiB + 1 body -> 413" invoke_expect \
  "$(event v2 POST /echo "$work/over" text/plain)" 'r["statusCode"] == 413'

# A malformed event is reported to the Runtime API as an invocation error; the next one is
# served as usual.
printf '{"hello": "not an HTTP event"}' >"$work/malformed.json"
printf '%s' '{"version":"2.0","rawPath":"/echo","headers":{"host":"h"},"requestContext":{"http":{"method":"POST","path":"/echo"}},"body":"not base64!","isBase64Encoded":true}' >"$work/bad-base64.json"
rejected() { # rejected EVENT-FILE ERROR-TYPE
  local out
  if out=$(invoke "$1" 2>&1); then
    echo "answered: $out"
    return 1
  fi
  grep -q "$2" <<<"$out" || {
    echo "$out"
    return 1
  }
}
check "an event of no HTTP kind -> invocation error (DeserializeError)" rejected "$work/malformed.json" DeserializeError
check "a body that is not base64 -> invocation error, not a crash" rejected "$work/bad-base64.json" panicked
check "the next invocation is served" status_body GET /health 200 ok
check "the function is still the same process" kill -0 "$function"

# --- logs ------------------------------------------------------------------------------------
stop
check "stdout: one JSON object per line, each with timestamp, level and message" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines, "no log line"
for l in lines:
    o = json.loads(l)
    assert isinstance(o, dict) and {"timestamp", "level", "message"} <= o.keys(), l
' "$work/main.stdout"
check "the malformed event's error line names its request id and X-Ray trace id" python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
errors = [o for o in lines if o["level"] == "ERROR" and "deserialization" in o["message"]]
assert errors, "no deserialization error line"
assert all(o.get("requestId") and o.get("xrayTraceId", "").startswith("Root=1-") for o in errors), errors
' "$work/main.stdout"
check "each request's access line names its request id and X-Ray trace id (RUST_LOG=debug)" python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
access = [o for o in lines if o["message"] == "request" and o["target"] == "hyper_cloudrun::respond"]
assert len(access) >= 10, f"{len(access)} access lines"
assert all(o.get("requestId") and o.get("xrayTraceId", "").startswith("Root=1-") for o in access), access
assert len({o["requestId"] for o in access}) == len(access), "a request id twice"
' "$work/main.stdout"
check "nothing on stderr" test ! -s "$work/main.stderr"

# AWS_LAMBDA_LOG_LEVEL wins over RUST_LOG; FATAL means ERROR.
start warn RUST_LOG=debug AWS_LAMBDA_LOG_LEVEL=WARN AWS_LAMBDA_LOG_FORMAT=JSON
status_body GET / 200 "$greeting" >/dev/null || true
printf '{}' >"$work/empty.json"
invoke "$work/empty.json" >/dev/null 2>&1 || true
stop
check "AWS_LAMBDA_LOG_LEVEL=WARN: no INFO or DEBUG line, the ERROR line still" python3 -c '
import json, sys
levels = [json.loads(l)["level"] for l in open(sys.argv[1])]
assert "ERROR" in levels and not {"INFO", "DEBUG"} & set(levels), levels
' "$work/warn.stdout"

start text AWS_LAMBDA_LOG_FORMAT=Text LOG_FORMAT=text
status_body GET / 200 "$greeting" >/dev/null || true
stop
check "AWS_LAMBDA_LOG_FORMAT=Text with LOG_FORMAT=text: plain lines" eval \
  'grep -q "INFO serving lambda invocations" "$work/text.stdout" && ! grep -q "^{" "$work/text.stdout"'

# --- configuration errors: one line on stderr, exit 64, before any invocation ---------------
config_runs=0
config_error() { # config_error VAR=VALUE…: exit 64, one line naming the first variable
  local status=0
  config_runs=$((config_runs + 1))
  (run "config-$config_runs" "${lambda_env[@]}" "$@") >"$work/config.stdout" 2>"$work/config.stderr" || status=$?
  if [ "$status" != 64 ] || [ "$(wc -l <"$work/config.stderr")" != 1 ] || [ -s "$work/config.stdout" ] ||
    ! grep -q "${1%%=*}" "$work/config.stderr"; then
    echo "exit $status, stderr: $(cat "$work/config.stderr"), stdout: $(head -c 300 "$work/config.stdout")"
    return 1
  fi
}
check "AWS_LAMBDA_LOG_LEVEL=verbose -> exit 64, one line" config_error AWS_LAMBDA_LOG_LEVEL=verbose
check "AWS_LAMBDA_LOG_FORMAT=yaml -> exit 64, one line" config_error AWS_LAMBDA_LOG_FORMAT=yaml
check "RUST_LOG=loud -> exit 64, one line" config_error RUST_LOG=loud
check "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=lots -> exit 64, one line" config_error AWS_LAMBDA_FUNCTION_MEMORY_SIZE=lots
check "AWS_LAMBDA_FUNCTION_NAME unset -> exit 64, one line" config_error AWS_LAMBDA_FUNCTION_NAME=

# --- without AWS_LAMBDA_RUNTIME_API the same binary serves HTTP ------------------------------
http_serves() {
  local log=$work/http.log port=""
  run http PORT=0 >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 200); do
    port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  local body
  body=$(curl -fsS --max-time 5 "http://127.0.0.1:$port/") || true
  signal http TERM "$pid"
  if ! wait "$pid" || [ "$body" != "$greeting" ]; then
    echo "port '$port', body '$body': $(cat "$log")"
    return 1
  fi
}
check "without AWS_LAMBDA_RUNTIME_API: HTTP on PORT, exit 0 after SIGTERM" http_serves

tally lambda
