# checks.image (and checks.image-tls): proves the image without Docker, inside the build
# sandbox. The static checks are nix/image-check.py, the same script tests/image.sh runs on any
# image tarball: the image against its description (./image.json) and the values computed here
# (one layer, the exact file list with modes, owners and dates, no shell, no setuid, the whole
# config, the static binary and the dependency list cargo auditable embedded in it, the files
# equal to the package's binary and cacert's bundle). Then the entrypoint starts from the
# unpacked root (twice: normal, then read-only) on loopback and must answer / and /health and
# exit 0 after SIGTERM.
# Assumes the Linux build sandbox (Nix's default, `sandbox = true`): its private network
# namespace is why the fixed ports below cannot collide with anything on the builder, and its
# unprivileged build user is why the read-only run means anything (root ignores `a-w`). With
# `sandbox = false` two concurrent checks could collide on the ports.
{
  lib,
  runCommand,
  cacert,
  curl,
  jq,
  python3,
  rust-audit-info,
  image,
  package,
  source,
  revision,
  # The image-tls variant: expect the CA bundle and SSL_CERT_FILE as well.
  withCaCertificates ? false,
  descriptionFile ? ./image.json,
}:
runCommand "${package.pname}-image${lib.optionalString withCaCertificates "-tls"}-check"
  {
    nativeBuildInputs = [
      curl
      jq
      python3
      rust-audit-info
    ];
  }
  ''
    set -euo pipefail
    fail() { echo "FAIL $*" >&2; exit 1; }
    ok() { echo "ok   $*"; }

    mkdir -p $out rootfs
    python3 ${./image-check.py} \
      --description ${descriptionFile} \
      ${lib.optionalString withCaCertificates "--variant tls"} \
      --name ${lib.escapeShellArg package.pname} \
      --version ${lib.escapeShellArg package.version} \
      --source ${lib.escapeShellArg source} \
      --revision ${lib.escapeShellArg revision} \
      --binary ${lib.getExe package} \
      ${lib.optionalString withCaCertificates "--ca-bundle ${cacert}/etc/ssl/certs/ca-no-trust-rules-bundle.crt"} \
      --rootfs rootfs \
      ${image} | tee $out/static-checks
    root=$PWD/rootfs
    entry=$root$(jq -r '.config.Entrypoint[0]' ${descriptionFile})

    # run NAME PORT: start the entrypoint with an empty environment plus PORT (as a container
    # would), wait for readiness, check both routes, SIGTERM, expect exit 0 within 10 s.
    run() {
      local name=$1 port=$2 base="http://127.0.0.1:$2" pid timer finished ready="" status=0
      local code body start elapsed
      env -i PORT="$port" TMPDIR="$root/tmp" "$entry" >"$out/$name.stdout" 2>"$out/$name.stderr" &
      pid=$!
      for _ in $(seq 100); do
        if curl -fsS --max-time 2 -o /dev/null "$base/health" 2>/dev/null; then
          ready=1
          break
        fi
        sleep 0.1
      done
      [ -n "$ready" ] || { cat "$out/$name.stderr" >&2; fail "$name: not serving within 10 s"; }

      code=$(curl -sS --max-time 5 -o "$out/$name.root-body" -w '%{http_code}' "$base/")
      [ "$code" = 200 ] || fail "$name: GET / returned $code"
      ok "$name: GET / 200"
      code=$(curl -sS --max-time 5 -o "$out/$name.health-body" -w '%{http_code}' "$base/health")
      body=$(cat "$out/$name.health-body")
      [ "$code" = 200 ] && [ "$body" = ok ] || fail "$name: GET /health returned $code '$body'"
      ok "$name: GET /health 200 ok"

      # Cloud Run's contract: SIGTERM, then SIGKILL 10 s later. `wait -n -p` returns as soon as
      # either the service or the 10 s timer ends and says which (kill -0 would also succeed
      # on an exited, not yet reaped process).
      start=$(date +%s%N)
      kill -TERM "$pid"
      sleep 10 &
      timer=$!
      wait -n -p finished "$pid" "$timer" || status=$?
      elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
      if [ "$finished" != "$pid" ]; then
        kill -KILL "$pid"
        fail "$name: still running 10 s after SIGTERM"
      fi
      kill "$timer"
      wait "$timer" || true
      [ "$status" = 0 ] || fail "$name: exit status $status after SIGTERM"
      ok "$name: SIGTERM -> exit 0 after $elapsed ms"

      # Cloud Logging reads one JSON object per stdout line.
      [ -s "$out/$name.stdout" ] || fail "$name: no log lines on stdout"
      jq -s -e 'all(.[]; type == "object")' "$out/$name.stdout" >/dev/null \
        || fail "$name: stdout is not JSON lines"
      ok "$name: stdout is JSON lines ($(wc -l < "$out/$name.stdout") lines)"
    }

    run writable 18080
    # Read-only root, /tmp included: the service needs no writable filesystem.
    chmod -R a-w "$root"
    run read-only 18081
    chmod -R u+w "$root"
  ''
