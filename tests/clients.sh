#!/usr/bin/env bash
# The service as clients nobody here wrote see it: curl (HTTP/1.1 and h2c prior knowledge),
# nghttp2's nghttp and h2load, Python's http.client and httpx (h2c), and Node's fetch, against
# the release binary on 127.0.0.1. Each check is one line; any failure exits 1 after all ran.
#
#   tests/clients.sh [BINARY]     (default: target/release/hyper-cloudrun, built if missing)
#
# Needs curl, nghttp and h2load (Debian nghttp2-client), node, python3, and httpx[http2] in the
# virtualenv CLIENTS_VENV (default ${XDG_CACHE_HOME:-$HOME/.cache}/hyper-cloudrun/clients-venv);
# .ci/run installs them. Loopback only; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${CLIENTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hyper-cloudrun/clients-venv}
missing=()
for tool in curl nghttp h2load node python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
"$venv/bin/python" -c 'import httpx, h2' 2>/dev/null || missing+=("httpx[http2] in $venv")
if [ ${#missing[@]} -gt 0 ]; then
  echo "clients: missing ${missing[*]}: run .ci/run, or apt-get install nghttp2-client nodejs curl and python3 -m venv $venv && $venv/bin/pip install 'httpx[http2]'" >&2
  exit 1
fi

bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --quiet --release --locked
  bin=target/release/hyper-cloudrun
fi

work=$(mktemp -d)
server=
cleanup() {
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
PORT=0 "$bin" >"$work/log" 2>&1 &
server=$!
for _ in $(seq 200); do
  port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$work/log" | head -1)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "${port:-}" ] || {
  echo "clients: the server did not start: $(cat "$work/log")" >&2
  exit 1
}
base=http://127.0.0.1:$port
greeting_len=$(curl -fsS "$base/" | wc -c)

# shellcheck source=tests/tally.sh
. tests/tally.sh

# HEAD: the GET answer's status and headers, content-length included, and no body, on both
# protocols (h2: no DATA frame after the HEADERS that end the stream).
head_h1() { # path status
  local h
  h=$(curl -sS -I --max-time 5 "$base$1")
  if ! grep -q "^HTTP/1.1 $2 " <<<"$h" || ! grep -qi '^content-length: [0-9]' <<<"$h"; then
    echo "$h"
    return 1
  fi
}
head_h2() { # path status
  local h
  h=$(curl -sS -I --http2-prior-knowledge --max-time 5 "$base$1") || {
    echo "curl failed: $h"
    return 1
  }
  if ! grep -q "^HTTP/2 $2" <<<"$h" || ! grep -qi '^content-length: [0-9]' <<<"$h"; then
    echo "$h"
    return 1
  fi
}
check "curl HEAD / over HTTP/1.1: 200, content-length" head_h1 / 200
for case in "/ 200" "/health 200" "/nope 404" "/echo 405"; do
  # shellcheck disable=SC2086 # two words: path, status
  check "curl -I --http2-prior-knowledge ${case%% *}: ${case##* }, content-length, no body" head_h2 $case
done
check "curl HEAD / over h2c: content-length is the GET body's ($greeting_len)" \
  bash -c "curl -sS -I --http2-prior-knowledge '$base/' | grep -qi '^content-length: $greeting_len'"

nghttp_head() {
  local out
  out=$(nghttp -nv -H ':method: HEAD' "$base/") || {
    echo "$out"
    return 1
  }
  # nghttp exits 0 even when it resets the stream, so read its frame log: the response's
  # HEADERS must end the stream, with no DATA, reset or unprocessed request.
  if ! grep -q '; END_STREAM' <<<"$out" ||
    grep -qE 'recv DATA frame|PROTOCOL_ERROR|not processed' <<<"$out"; then
    echo "$out"
    return 1
  fi
}
check "nghttp HEAD /: HEADERS ending the stream, no DATA frame" nghttp_head
check "nghttp GET / and /health over h2c" nghttp -n "$base/" "$base/health"
h2load_get() {
  local out
  out=$(h2load -n 2000 -c 4 -m 10 "$base/")
  grep -q '2000 succeeded, 0 failed, 0 errored' <<<"$out" || {
    echo "$out"
    return 1
  }
}
check "h2load 2000 GET / over h2c: all succeeded" h2load_get

# Early answers: the server refuses a 5 MB body with 413 while the client is still sending it.
# A client that writes it all before reading (both of these) must get the 413, not EPIPE.
check "python http.client: 5 MB POST /echo gets its 413, no broken pipe" python3 - "$port" <<'EOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("POST", "/echo", body=b"x" * (5 * 1024 * 1024), headers={"content-type": "application/octet-stream"})
r = c.getresponse()
assert r.status == 413, r.status
assert r.getheader("connection", "").lower() == "close", r.getheaders()
EOF
check "python http.client: malformed head 'Host : x' gets 400" python3 - "$port" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
assert data.startswith(b"HTTP/1.1 400 "), data
EOF
check "node fetch: 5 MB POST /echo gets its 413" node -e "
fetch('$base/echo', {method: 'POST', body: Buffer.alloc(5 * 1024 * 1024, 120)})
  .then(r => { if (r.status !== 413) throw new Error('status ' + r.status); })
  .catch(e => { console.error(e); process.exit(1); });
"
check "node fetch: GET /health is ok, not cacheable" node -e "
fetch('$base/health').then(async r => {
  const body = await r.text();
  if (r.status !== 200 || body !== 'ok\n' || r.headers.get('cache-control') !== 'no-store')
    throw new Error(r.status + ' ' + JSON.stringify(body) + ' ' + r.headers.get('cache-control'));
}).catch(e => { console.error(e); process.exit(1); });
"
check "httpx over h2c: GET, HEAD and POST /echo" "$venv/bin/python" - "$base" <<'EOF'
import httpx, sys
base = sys.argv[1]
with httpx.Client(http1=False, http2=True, timeout=10) as c:
    r = c.get(base + "/")
    assert r.http_version == "HTTP/2" and r.status_code == 200, (r.http_version, r.status_code)
    h = c.head(base + "/")
    assert h.status_code == 200 and h.content == b"", h
    assert h.headers["content-length"] == str(len(r.content)), h.headers
    e = c.post(base + "/echo", content=b"hello", headers={"content-type": "text/plain"})
    assert e.status_code == 200 and e.content == b"hello", e
    assert c.head(base + "/nope").status_code == 404
EOF

kill -TERM "$server"
status=0
wait "$server" || status=$?
server=
if [ "$status" -eq 0 ]; then
  ok "SIGTERM after the clients: exit 0"
else
  bad "SIGTERM after the clients: exit $status"
fi
tally clients
