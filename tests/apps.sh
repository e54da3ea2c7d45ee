#!/usr/bin/env bash
# The flake's apps (nix run .#push, .#deploy, .#trigger) without Nix and without Google Cloud:
# each nix/*.sh is assembled the way nix/apps.nix does it (the variables apps.nix sets, then
# the script) and run as writeShellApplication runs it (errexit, nounset, pipefail), with
# stand-ins for gcloud and skopeo on PATH that record their arguments. Asserts the exact
# commands each app runs, and that bad arguments exit 64 without calling anything. The
# assembled scripts must also pass ShellCheck, as writeShellApplication requires at build time
# (so it must be installed: apt-get install shellcheck). HOME and the system policy path point
# into a scratch directory: nothing of this machine's configuration is read.
#
#   tests/apps.sh [--image TARBALL]
#
# With --image, push also runs for real: the real skopeo pushes TARBALL to a registry started
# here (Debian's docker-registry, the CNCF distribution registry, on 127.0.0.1 with htpasswd
# auth: an Artifact Registry stand-in), only gcloud is stood in; then `docker pull` of the
# printed IMAGE@DIGEST must run and serve, and deploy must pick that digest up.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
image_tarball=""
if [ "${1:-}" = --image ] && [ -f "${2:-}" ]; then
  image_tarball=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
elif [ $# -gt 0 ]; then
  echo "usage: tests/apps.sh [--image TARBALL]" >&2
  exit 64
fi
# shellcheck source=tests/docker.sh
. "$repo/tests/docker.sh"
work=$(mktemp -d)
registry_pid=""
cleanup() {
  [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
  [ -z "$image_tarball" ] || docker_down
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/tally.sh
. "$repo/tests/tally.sh"

# Stand-ins: every call appends one line, its arguments separated by '|'.
mkdir -p "$work/bin"
cat >"$work/bin/gcloud" <<'STANDIN'
#!/usr/bin/env bash
(IFS='|'; printf 'gcloud|%s\n' "$*") >>"$CALLS"
case "$*" in
  "config get-value project") echo my-proj ;;
  "auth print-access-token") echo token-123 ;;
esac
STANDIN
# skopeo also keeps the archive it was given and describes the auth file (mode, content), and
# says on stdout what the real one does.
cat >"$work/bin/skopeo" <<'STANDIN'
#!/usr/bin/env bash
(IFS='|'; printf 'skopeo|%s\n' "$*") >>"$CALLS"
echo "Getting image source signatures"
while [ $# -gt 0 ]; do
  case $1 in
    --digestfile) printf 'sha256:%064d' 7 >"$2" ;;
    --dest-authfile) printf 'authfile|%s|%s\n' "$(stat -c %a "$2")" "$(cat "$2")" >>"$CALLS.auth" ;;
    docker-archive:*) cp "${1#docker-archive:}" "$CALLS.archive" ;;
  esac
  shift
done
STANDIN
chmod +x "$work/bin/gcloud" "$work/bin/skopeo"
export CALLS=$work/calls
export XDG_STATE_HOME=$work/state
export HOME=$work/home
unset XDG_CONFIG_HOME
system_policy=$work/etc/containers/policy.json
mkdir -p "$HOME"

# app NAME: the script as apps.nix assembles it, in $work/NAME.
assemble() {
  {
    echo '#!/usr/bin/env bash'
    echo 'set -o errexit -o nounset -o pipefail'
    case $1 in
      push) printf 'image=%q\ntag=%q\ndefault_policy=%q\nsystem_policy=%q\n' "${push_image:-$work/image.tar.gz}" \
        "${push_tag:-0.1.0}" "${push_default_policy:-/dev/null}" "$system_policy" ;;
    esac
    case $1 in
      # Expanded when the app runs, as in apps.nix.
      push | deploy) printf '%s\n' "state_file=\"\${XDG_STATE_HOME:-\$HOME/.local/state}/my-service/last-push\"" ;;
    esac
    cat "$repo/nix/$1.sh"
  } >"$work/$1"
  chmod +x "$work/$1"
}
command -v shellcheck >/dev/null || {
  echo "apps: shellcheck is missing: apt-get install shellcheck" >&2
  exit 1
}
for app in push deploy trigger; do
  assemble "$app"
  if out=$(shellcheck "$work/$app" 2>&1); then ok "shellcheck $app"; else bad "shellcheck $app: $out"; fi
done

# expect NAME STATUS CALLS -- ARGS: runs app NAME with ARGS; its exit status and the recorded
# calls (one per line) must be exactly these.
expect() {
  local app=$1 want_status=$2 want_calls=$3 status=0
  shift 4
  : >"$CALLS"
  PATH=$work/bin:$PATH "$work/$app" "$@" >"$work/out" 2>"$work/err" || status=$?
  local got_calls
  got_calls=$(cat "$CALLS")
  if [ "$status" = "$want_status" ] && [ "$got_calls" = "$want_calls" ]; then
    ok "$app $*"
  else
    bad "$app $*: exit $status (want $want_status), calls:"$'\n'"$got_calls"$'\n'"want:"$'\n'"$want_calls"$'\n'"stderr: $(cat "$work/err")"
  fi
}

# --- trigger --------------------------------------------------------------------------------
expect trigger 0 "gcloud|eventarc|triggers|create|svc-pubsub-my-topic|--location=europe-west1|--destination-run-service=svc|--destination-run-region=europe-west1|--destination-run-path=/events|--event-filters=type=google.cloud.pubsub.topic.v1.messagePublished|--transport-topic=my-topic|--service-account=sa@p.iam.gserviceaccount.com" \
  -- svc --region europe-west1 --topic my-topic --service-account=sa@p.iam.gserviceaccount.com
if grep -q "messages published to Pub/Sub topic my-topic -> Cloud Run service svc (europe-west1) POST /events" "$work/err"; then
  ok "trigger says what it creates"
else
  bad "trigger did not say what it creates: $(cat "$work/err")"
fi
expect trigger 0 "gcloud|eventarc|triggers|create|svc-storage-my-bucket-data|--location=us|--destination-run-service=svc|--destination-run-region=us-central1|--destination-run-path=/events|--event-filters=type=google.cloud.storage.object.v1.finalized|--event-filters=bucket=My_Bucket.data" \
  -- svc --region=us-central1 --bucket=My_Bucket.data --location us
expect trigger 0 "gcloud|eventarc|triggers|create|mine|--location=r|--destination-run-service=svc|--destination-run-region=r|--destination-run-path=/events|--event-filters=type=google.cloud.pubsub.topic.v1.messagePublished|--transport-topic=projects/p/topics/t|--project|p" \
  -- svc --region r --topic projects/p/topics/t --name mine --project p
expect trigger 64 "" -- svc --region r --topic t --bucket b
expect trigger 64 "" -- svc --region r
expect trigger 64 "" -- svc --topic t
expect trigger 64 "" -- --region r --topic t
expect trigger 64 "" -- svc --region "" --topic t

# The default trigger id: lowercase letters, digits and hyphens, a letter first, a letter or
# digit last, at most 63 characters. "svc-pubsub-" plus 50 letters is 61 characters; the topic's
# ".." become hyphens 62 and 63, where the cut falls, and must not stay at the end.
long_topic=$(printf 'a%.0s' $(seq 50))..zzz
expect trigger 0 "gcloud|eventarc|triggers|create|svc-pubsub-${long_topic%..zzz}|--location=r|--destination-run-service=svc|--destination-run-region=r|--destination-run-path=/events|--event-filters=type=google.cloud.pubsub.topic.v1.messagePublished|--transport-topic=$long_topic" \
  -- svc --region r --topic "$long_topic"
# The same rule wherever the cut falls in a run of replaced characters, for both sources.
for n in 44 45 46 47 48 49 50; do
  name=$(printf 'x%.0s' $(seq "$n")).._.Z_
  for source in --topic --bucket; do
    : >"$CALLS"
    PATH=$work/bin:$PATH "$work/trigger" Svc-1 --region r "$source" "$name" >/dev/null 2>&1 || true
    id=$(cut -d'|' -f5 "$CALLS")
    if [[ $id =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] && [ ${#id} -le 63 ]; then
      ok "trigger id '$id' (${#id} characters) for $source $name"
    else
      bad "trigger id '$id' (${#id} characters) for $source $name is not a valid trigger id"
    fi
  done
done

# trigger.sh needs only what apps.nix's runtimeInputs for it name: run it with nothing else on
# PATH (writeShellApplication would keep the caller's PATH after them, hiding a missing input).
inputs=$(awk '/^  trigger = writeShellApplication/ { t = 1 } t && /runtimeInputs = \[/ { r = 1 }
  t && r { list = list " " $0; if (/\]/) exit } END { print list }' "$repo/nix/apps.nix" |
  sed 's/.*\[//; s/\].*//' | xargs -n 1 | sort | xargs)
pinned_path=""
for input in $inputs; do
  case $input in
    coreutils)
      mkdir -p "$work/coreutils"
      dpkg-query -L coreutils | grep -E '^(/usr)?/bin/[^/]+$' | while read -r f; do ln -sf "$f" "$work/coreutils/"; done
      pinned_path=$pinned_path:$work/coreutils
      ;;
    google-cloud-sdk)
      # The stand-in with an absolute interpreter, as nixpkgs' gcloud has: no bash on PATH here.
      mkdir -p "$work/gcloud"
      { echo "#!$BASH" && tail -n +2 "$work/bin/gcloud"; } >"$work/gcloud/gcloud"
      chmod +x "$work/gcloud/gcloud"
      pinned_path=$pinned_path:$work/gcloud
      ;;
    *) bad "trigger runtimeInput '$input' has no stand-in here: add one" ;;
  esac
done
: >"$CALLS"
status=0
PATH=${pinned_path#:} "$BASH" "$work/trigger" svc --region r --topic "$long_topic" >"$work/out" 2>"$work/err" || status=$?
if [ "$status" = 0 ] && grep -q "^gcloud|eventarc|triggers|create|svc-pubsub-a" "$CALLS"; then
  ok "trigger runs with only its runtimeInputs on PATH: $inputs"
else
  bad "trigger with only its runtimeInputs on PATH ($inputs): exit $status: $(cat "$work/err")"
fi

# --- push, then deploy what it recorded -------------------------------------------------------
: >"$work/image.tar.gz"
registry=europe-west1-docker.pkg.dev/p/r/my-service
digest=sha256:$(printf '%064d' 7)
mkdir -p "$work/tmp"
# push_run ARGS…: runs push (stand-ins first on PATH, temporary files in $work/tmp); its exit
# status in $status, its output in $work/out and $work/err.
push_run() {
  : >"$CALLS"
  rm -f "$CALLS.auth" "$CALLS.archive"
  status=0
  PATH=$work/bin:$PATH TMPDIR=$work/tmp "$work/push" "$@" >"$work/out" 2>"$work/err" || status=$?
}
push_run "$registry"
skopeo_call=$(grep '^skopeo|' "$CALLS" || true)
case "$status|$skopeo_call" in
  "0|skopeo|--policy|/dev/null|copy|--retry-times|3|--digestfile|"*"|--dest-authfile|"*"|docker-archive:$work/image.tar.gz|docker://$registry:0.1.0")
    ok "push copies the tarball with skopeo as $registry:0.1.0"
    ;;
  *) bad "push: exit $status, calls: $(cat "$CALLS") stderr: $(cat "$work/err")" ;;
esac
want_auth="authfile|600|{\"auths\": {\"europe-west1-docker.pkg.dev\": {\"auth\": \"$(printf 'oauth2accesstoken:token-123' | base64 -w0)\"}}}"
if [ "$(cat "$CALLS.auth" 2>/dev/null)" = "$want_auth" ] && ! grep -q token-123 "$CALLS"; then
  ok "push hands skopeo the gcloud token in an auth file of mode 600, not in its arguments"
else
  bad "push auth: $(cat "$CALLS.auth" 2>/dev/null), calls: $(cat "$CALLS")"
fi
if [ -z "$(ls -A "$work/tmp")" ]; then
  ok "push leaves no file behind (the auth file is removed)"
else
  bad "push left $(ls -A "$work/tmp") in TMPDIR"
fi
if [ "$(cat "$work/out")" = "$registry@$digest" ]; then
  ok "push prints IMAGE@DIGEST alone on stdout (skopeo's progress goes to stderr)"
else
  bad "push printed '$(cat "$work/out")'"
fi
if [ "$(cat "$XDG_STATE_HOME/my-service/last-push")" = "$registry@$digest" ]; then
  ok "push records IMAGE@DIGEST for deploy"
else
  bad "push recorded nothing"
fi

# The signature policy: containers/image reads $HOME/.config/containers/policy.json, then the
# system's; never $XDG_CONFIG_HOME. Only when neither exists does push name skopeo's default.
policy_case() {
  local what=$1 file=$2 want=$3 got=""
  mkdir -p "$(dirname "$file")"
  echo '{"default": [{"type": "reject"}]}' >"$file"
  XDG_CONFIG_HOME=$work/xdg push_run "$registry"
  rm -f "$file"
  grep -q '^skopeo|--policy|/dev/null|copy|' "$CALLS" && got=--policy
  if [ "$status" = 0 ] && [ "$got" = "$want" ]; then
    ok "push with a policy in $what: ${want:-skopeo finds it itself}"
  else
    bad "push with a policy in $what: exit $status, calls: $(cat "$CALLS")"
  fi
}
policy_case "\$HOME/.config/containers" "$HOME/.config/containers/policy.json" ""
policy_case 'the system path' "$system_policy" ""
policy_case "\$XDG_CONFIG_HOME/containers only" "$work/xdg/containers/policy.json" --policy

# A registry host with a port: the `:` before the first `/` is no tag.
push_run localhost:5000/team/my-service
if [ "$status" = 0 ] && grep -q '|docker://localhost:5000/team/my-service:0.1.0$' "$CALLS" &&
  grep -q '"localhost:5000"' "$CALLS.auth"; then
  ok "push to a registry host with a port: localhost:5000/team/my-service:0.1.0"
else
  bad "push localhost:5000/team/my-service: exit $status, calls: $(cat "$CALLS") stderr: $(cat "$work/err")"
fi
PUSH_TLS_VERIFY=false push_run localhost:5000/team/my-service
if [ "$status" = 0 ] && grep -q '|--dest-tls-verify=false|docker-archive:' "$CALLS"; then
  ok "PUSH_TLS_VERIFY=false: --dest-tls-verify=false"
else
  bad "PUSH_TLS_VERIFY=false: exit $status, calls: $(cat "$CALLS")"
fi
PUSH_TLS_VERIFY=maybe expect push 64 "" -- "$registry"

# A gzipped tarball (what the flake hands over) reaches skopeo decompressed, whatever its version.
printf 'an image' | gzip -n >"$work/image.tar.gz"
push_run "$registry"
if [ "$status" = 0 ] && [ "$(cat "$CALLS.archive" 2>/dev/null)" = "an image" ] && [ -z "$(ls -A "$work/tmp")" ]; then
  ok "push gives skopeo the gzipped tarball decompressed, and removes the copy"
else
  bad "push of a gzipped tarball: exit $status, archive '$(cat "$CALLS.archive" 2>/dev/null)', calls: $(cat "$CALLS")"
fi
: >"$work/image.tar.gz"

expect push 64 "" -- "$registry:latest"
expect push 64 "" -- "localhost:5000/team/my-service:latest"
expect push 64 "" -- "$registry@$digest"
expect push 64 "" -- my-service
expect push 64 "" -- team/my-service
expect push 64 "" -- "$registry" extra
push_run "$registry"

expect deploy 0 "gcloud|config|get-value|project
gcloud|run|deploy|svc|--image|$registry@$digest|--region|europe-west1|--update-env-vars|GOOGLE_CLOUD_PROJECT=my-proj|--allow-unauthenticated" \
  -- svc --region europe-west1 --allow-unauthenticated
expect deploy 0 "gcloud|run|deploy|svc|--image|other@sha256:abc|--region|r|--update-env-vars|GOOGLE_CLOUD_PROJECT=q|--project|q" \
  -- svc --region r other@sha256:abc --project q
expect deploy 64 "" -- svc --region r --image other:latest
expect deploy 64 "" -- svc other@sha256:abc
rm -f "$XDG_STATE_HOME/my-service/last-push"
expect deploy 64 "" -- svc --region r

# --- push for real --------------------------------------------------------------------------------
# real_push PUSH-ARGS…: the push app with the real skopeo and the gcloud stand-in that prints the
# token in $real/gcloud-token; nothing of this machine's container configuration is read.
real_push() {
  status=0
  env PATH="$real/bin:$PATH" TMPDIR="$real/tmp" XDG_RUNTIME_DIR="$real/run" \
    CONTAINERS_REGISTRIES_CONF="$real/registries.conf" "$real/push" "$@" \
    >"$work/out" 2>"$work/err" || status=$?
}
# registry_digest REPO TAG: the manifest digest the registry reports (Docker-Content-Digest).
registry_digest() {
  printf 'user = "oauth2accesstoken:%s"\n' "$(cat "$real/token")" |
    curl -sS -K - -I -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$host/v2/$1/manifests/$2" |
    tr -d '\r' | sed -n 's/^docker-content-digest: //Ip'
}

if [ -z "$image_tarball" ]; then
  echo "apps: the push to a real registry was skipped: no --image TARBALL"
else
  for tool in skopeo docker-registry htpasswd curl; do
    command -v "$tool" >/dev/null || bad "real push: missing $tool (.ci/run installs it)"
  done
  real=$work/real
  mkdir -p "$real/bin" "$real/tmp" "$real/run" "$real/registry"
  : >"$real/registries.conf"
  # The registry's password for oauth2accesstoken: a fresh random token, as gcloud's would be.
  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$real/token"
  htpasswd -B -i -n oauth2accesstoken <"$real/token" >"$real/htpasswd"
  cat >"$real/config.yml" <<CONFIG
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $real/registry
http:
  addr: 127.0.0.1:0
auth:
  htpasswd:
    realm: artifact-registry-stand-in
    path: $real/htpasswd
CONFIG
  docker-registry serve "$real/config.yml" >"$real/registry.log" 2>&1 &
  registry_pid=$!
  host=""
  for _ in $(seq 100); do
    host=$(sed -n 's/.*msg="listening on \(127\.0\.0\.1:[0-9]*\)".*/\1/p' "$real/registry.log")
    [ -z "$host" ] || break
    sleep 0.1
  done
  [ -n "$host" ] || bad "docker-registry did not start: $(cat "$real/registry.log")"
  cat >"$real/bin/gcloud" <<'STANDIN'
#!/usr/bin/env bash
(IFS='|'; printf 'gcloud|%s\n' "$*") >>"$CALLS"
case "$*" in
  "auth print-access-token") cat "$(dirname "$0")/../gcloud-token" ;;
esac
STANDIN
  chmod +x "$real/bin/gcloud"
  echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$real/default-policy.json"
  push_image=$image_tarball
  push_tag=$(tar -xOf "$image_tarball" manifest.json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["RepoTags"][0].rsplit(":", 1)[1])')
  push_default_policy=$real/default-policy.json
  assemble push
  mv "$work/push" "$real/push"
  repo_path=team/hyper-cloudrun
  target=$host/$repo_path
  state=$XDG_STATE_HOME/my-service/last-push

  rm -f "$state"
  echo wrong-token >"$real/gcloud-token"
  PUSH_TLS_VERIFY=false real_push "$target"
  if [ "$status" != 0 ] && [ ! -s "$work/out" ] && [ ! -e "$state" ] &&
    grep -qiE 'unauthorized|authentication required' "$work/err"; then
    ok "real push, wrong password: exit $status, skopeo's error ($(grep -oiE 'unauthorized[^"]*|authentication required' "$work/err" | head -n 1)), nothing recorded"
  else
    bad "real push, wrong password: exit $status, stdout '$(cat "$work/out")', stderr: $(cat "$work/err")"
  fi

  cp "$real/token" "$real/gcloud-token"
  real_push "$target"
  if [ "$status" != 0 ] && grep -q 'server gave HTTP response to HTTPS client' "$work/err"; then
    ok "real push to the plain-HTTP registry without PUSH_TLS_VERIFY=false: refused"
  else
    bad "real push without PUSH_TLS_VERIFY=false: exit $status, stderr: $(cat "$work/err")"
  fi

  # The push, while a sampler reads every process's command line until it ends.
  env PATH="$real/bin:$PATH" TMPDIR="$real/tmp" XDG_RUNTIME_DIR="$real/run" \
    CONTAINERS_REGISTRIES_CONF="$real/registries.conf" PUSH_TLS_VERIFY=false \
    "$real/push" "$target" >"$work/out" 2>"$work/err" &
  push_pid=$!
  python3 - "$push_pid" "$real/token" >"$work/sampled" <<'SAMPLER'
import os, stat, sys, time
pid, token = sys.argv[1], open(sys.argv[2], "rb").read().strip()
samples = skopeo = seen = 0
modes = set()
def running():
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while running():
    samples += 1
    for p in os.listdir("/proc"):
        try:
            argv = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        seen += any(token in a for a in argv)
        if os.path.basename(argv[0]) == b"skopeo" and b"copy" in argv:
            skopeo += 1
            if b"--dest-authfile" in argv:
                try:
                    path = argv[argv.index(b"--dest-authfile") + 1]
                    modes.add(oct(stat.S_IMODE(os.stat(path).st_mode)))
                except (OSError, IndexError):
                    pass
    time.sleep(0.005)
print(samples, skopeo, seen, " ".join(sorted(modes)) or "none")
SAMPLER
  status=0
  wait "$push_pid" || status=$?
  read -r samples skopeo_seen token_seen modes <"$work/sampled"
  pushed=$(cat "$work/out")
  digest=$(registry_digest "$repo_path" "$push_tag")
  if [ "$status" = 0 ] && [ "$(wc -l <"$work/out")" = 1 ] && [ -n "$digest" ] && [ "$pushed" = "$target@$digest" ]; then
    ok "real push: stdout is one line, $pushed, the digest the registry reports"
  else
    bad "real push: exit $status, stdout '$pushed', registry digest '$digest', stderr: $(cat "$work/err")"
  fi
  if [ "$skopeo_seen" -gt 0 ] && [ "$token_seen" = 0 ] && [ "$modes" = 0o600 ]; then
    ok "real push: the token on no command line ($samples samples of /proc/*/cmdline, skopeo in $skopeo_seen), its auth file mode 600"
  else
    bad "real push: $samples samples, skopeo in $skopeo_seen, the token in $token_seen, auth file modes $modes"
  fi
  if [ "$(cat "$state" 2>/dev/null)" = "$pushed" ] && [ -z "$(ls -A "$real/tmp")" ]; then
    ok "real push: recorded for deploy; the auth file and the decompressed tarball removed"
  else
    bad "real push: recorded '$(cat "$state" 2>/dev/null)', left in TMPDIR: $(ls -A "$real/tmp")"
  fi

  if docker_up; then
    docker_track "$pushed"
    DOCKER_CONFIG=$real/docker docker login --username oauth2accesstoken --password-stdin "$host" \
      <"$real/token" >/dev/null 2>&1 || bad "docker login $host failed"
    if DOCKER_CONFIG=$real/docker docker pull -q "$pushed" >/dev/null &&
      docker run -d --name "${docker_prefix}pulled" --read-only -p 127.0.0.1::8080 "$pushed" >/dev/null; then
      port=$(docker port "${docker_prefix}pulled" 8080/tcp | sed -n 's/^127\.0\.0\.1://p' | head -n 1)
      for _ in $(seq 100); do
        curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break
        sleep 0.1
      done
      if [ "$(curl -sS --max-time 5 "http://127.0.0.1:$port/health")" = ok ]; then
        ok "docker pull $pushed, then docker run: /health answers"
      else
        bad "the pulled image does not serve: $(docker logs "${docker_prefix}pulled" 2>&1)"
      fi
    else
      bad "docker pull/run of $pushed failed"
    fi
  else
    bad "no Docker daemon for the pull"
  fi

  expect deploy 0 "gcloud|config|get-value|project
gcloud|run|deploy|svc|--image|$pushed|--region|r|--update-env-vars|GOOGLE_CLOUD_PROJECT=my-proj" \
    -- svc --region r
fi

tally apps
