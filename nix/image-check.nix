# checks.image (and checks.image-tls): proves the image without Docker, inside the build
# sandbox. Unpacks the tarball, asserts one layer, the exact file list and the config, reads the
# dependency list cargo auditable embedded in the binary, then starts the entrypoint from the
# unpacked root (twice: normal, then read-only) on loopback and checks /, /health and a clean
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
  file,
  jq,
  rust-audit-info,
  image,
  package,
  source,
  revision,
  # The image-tls variant: expect the CA bundle and SSL_CERT_FILE as well.
  withCaCertificates ? false,
}:
let
  exe = package.meta.mainProgram;
  caBundle = "etc/ssl/certs/ca-bundle.crt";
  expected = {
    repoTag = "${image.imageName}:${image.imageTag}";
    # One line per layer entry, `tar -t` order (sorted by name), leading "./" removed.
    files = [
      "bin/"
      "bin/${exe}"
    ]
    ++ lib.optionals withCaCertificates [
      "etc/"
      "etc/ssl/"
      "etc/ssl/certs/"
      caBundle
    ]
    ++ [ "tmp/" ];
    env = lib.optionals withCaCertificates [ "SSL_CERT_FILE=/${caBundle}" ];
    labels = {
      "org.opencontainers.image.title" = package.pname;
      "org.opencontainers.image.version" = package.version;
      "org.opencontainers.image.source" = source;
      "org.opencontainers.image.revision" = revision;
    };
  };
in
runCommand "${package.pname}-image${lib.optionalString withCaCertificates "-tls"}-check"
  {
    nativeBuildInputs = [
      curl
      file
      jq
      rust-audit-info
    ];
    expectedRepoTag = expected.repoTag;
    expectedFiles = lib.concatLines expected.files;
    expectedEnv = builtins.toJSON expected.env;
    expectedLabels = builtins.toJSON expected.labels;
  }
  ''
    set -euo pipefail
    fail() { echo "FAIL $*" >&2; exit 1; }
    ok() { echo "ok   $*"; }
    # assert DESCRIPTION JQ-ARGS… : jq -e must succeed
    assert() { local what=$1; shift; jq -e "$@" >/dev/null || fail "$what"; ok "$what"; }

    mkdir -p $out unpacked rootfs
    tar -xf ${image} -C unpacked
    cd unpacked

    assert "one image, exactly one layer" 'length == 1 and (.[0].Layers | length) == 1' manifest.json
    assert "repo tag $expectedRepoTag" --arg t "$expectedRepoTag" '.[0].RepoTags == [$t]' manifest.json
    config=$(jq -r '.[0].Config' manifest.json)
    layer=$(jq -r '.[0].Layers[0]' manifest.json)

    assert "Entrypoint exec form /bin/${exe}" '.config.Entrypoint == ["/bin/${exe}"]' "$config"
    assert "no Cmd" '.config | has("Cmd") | not' "$config"
    assert "User 65534:65534" '.config.User == "65534:65534"' "$config"
    assert "User numeric, non-root" '.config.User | test("^[1-9][0-9]*:[1-9][0-9]*$")' "$config"
    assert "ExposedPorts 8080/tcp only" '.config.ExposedPorts == {"8080/tcp": {}}' "$config"
    assert "Env $expectedEnv" --argjson want "$expectedEnv" '(.config.Env // []) == $want' "$config"
    assert "architecture amd64" '.architecture == "amd64"' "$config"
    assert "os linux" '.os == "linux"' "$config"
    assert "fixed created date" '.created | startswith("1970-01-01T00:00:01")' "$config"
    assert "OCI labels" --argjson want "$expectedLabels" '.config.Labels == $want' "$config"
    assert "config names no store path" \
      '[.config | .. | strings | select(contains("${builtins.storeDir}"))] | length == 0' "$config"

    # Exact file list: nothing but the binary and /tmp, plus the CA bundle in image-tls (no /nix,
    # no shell).
    tar -tf "$layer" | sed -e 's|^\./||' -e '/^$/d' > $out/files
    diff -u <(printf '%s' "$expectedFiles") $out/files || fail "layer file list"
    ok "layer holds exactly: $(tr '\n' ' ' < $out/files)"

    # Types, modes, owners from the tar headers (extraction as non-root would mask them).
    tar --numeric-owner -tvf "$layer" > $out/listing
    cat $out/listing
    ! grep -Ev '^[-d]' $out/listing || fail "only regular files and directories"
    ! grep -E '^.{3}[sS]|^.{6}[sS]' $out/listing || fail "no setuid/setgid files"
    ! awk '$2 != "0/0"' $out/listing | grep . || fail "everything owned by 0/0"
    grep -Eq '^-r.xr.xr.x .* \./bin/${exe}$' $out/listing || fail "bin/${exe} executable by all"
    grep -Eq '^drwxrwxrwt .* \./tmp/$' $out/listing || fail "tmp is 1777"
    ${lib.optionalString withCaCertificates ''
      grep -Eq '^-r--r--r-- .* \./${caBundle}$' $out/listing || fail "${caBundle} is 0444"
    ''}
    ok "modes and owners"

    tar -xf "$layer" -C ../rootfs
    cd ..
    root=$PWD/rootfs
    cmp "$root/bin/${exe}" ${lib.getExe package} || fail "image binary differs from the package"
    ok "image binary is the package's binary"
    info=$(file --brief "$root/bin/${exe}")
    case "$info" in
      *"dynamically linked"* | *interpreter*) fail "binary is dynamically linked: $info" ;;
    esac
    ok "binary is static: $info"

    # cargo auditable's dependency list: rust-audit-info reads the `.dep-v0` section by name
    # and exits 1 without it (cargo-auditable auditable-extract `raw_auditable_data`,
    # rust-audit-info src/main.rs). The list must name this crate as root and hyper.
    rust-audit-info "$root/bin/${exe}" > $out/audit-data.json \
      || fail "bin/${exe} has no .dep-v0 section (not built with cargo auditable)"
    assert "dependency list has the root crate and hyper" \
      '(.packages | any(.root == true and .name == "${package.pname}")) and (.packages | any(.name == "hyper"))' \
      $out/audit-data.json
    ok "audit data lists $(jq '.packages | length' $out/audit-data.json) packages"
    ${lib.optionalString withCaCertificates ''
      cmp "$root/${caBundle}" ${cacert}/etc/ssl/certs/ca-no-trust-rules-bundle.crt \
        || fail "${caBundle} is not cacert's ca-no-trust-rules-bundle.crt"
      ! grep -q 'BEGIN TRUSTED CERTIFICATE' "$root/${caBundle}" || fail "${caBundle} has trust-rule blocks"
      ok "${caBundle} is cacert's plain PEM bundle ($(wc -c < "$root/${caBundle}") bytes)"
    ''}

    entry=$root$(jq -r '.config.Entrypoint[0]' "unpacked/$config")

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
