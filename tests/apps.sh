#!/usr/bin/env bash
# The flake's apps (nix run .#push, .#deploy, .#trigger) without Nix and without Google Cloud:
# each nix/*.sh is assembled the way nix/apps.nix does it (the variables apps.nix sets, then
# the script) and run as writeShellApplication runs it (errexit, nounset, pipefail), with
# stand-ins for gcloud and skopeo on PATH that record their arguments. Asserts the exact
# commands each app runs, and that bad arguments exit 64 without calling anything. The
# assembled scripts must also pass ShellCheck, as writeShellApplication requires at build time
# (so it must be installed: apt-get install shellcheck).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
pass=0
ok() {
  printf 'ok   %s\n' "$*"
  pass=$((pass + 1))
}
bad() {
  printf 'FAIL %s\n' "$*" >&2
  failures=$((failures + 1))
}

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
cat >"$work/bin/skopeo" <<'STANDIN'
#!/usr/bin/env bash
(IFS='|'; printf 'skopeo|%s\n' "$*") >>"$CALLS"
while [ $# -gt 0 ]; do
  if [ "$1" = --digestfile ]; then printf 'sha256:%064d' 7 >"$2"; fi
  shift
done
STANDIN
chmod +x "$work/bin/gcloud" "$work/bin/skopeo"
export CALLS=$work/calls
export XDG_STATE_HOME=$work/state

# app NAME: the script as apps.nix assembles it, in $work/NAME.
assemble() {
  {
    echo '#!/usr/bin/env bash'
    echo 'set -o errexit -o nounset -o pipefail'
    case $1 in
      push) printf "image=%q\ntag=0.1.0\ndefault_policy=/dev/null\n" "$work/image.tar.gz" ;;
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

# --- push, then deploy what it recorded -------------------------------------------------------
: >"$work/image.tar.gz"
registry=europe-west1-docker.pkg.dev/p/r/my-service
digest=sha256:$(printf '%064d' 7)
: >"$CALLS"
status=0
PATH=$work/bin:$PATH "$work/push" "$registry" >"$work/out" 2>"$work/err" || status=$?
skopeo_call=$(grep '^skopeo|' "$CALLS" || true)
case "$status|$skopeo_call" in
  "0|skopeo|"*"|copy|"*"|--dest-creds|oauth2accesstoken:token-123|docker-archive:$work/image.tar.gz|docker://$registry:0.1.0")
    ok "push copies the tarball with skopeo as $registry:0.1.0, with the gcloud token"
    ;;
  *) bad "push: exit $status, calls: $(cat "$CALLS") stderr: $(cat "$work/err")" ;;
esac
if [ "$(cat "$work/out")" = "$registry@$digest" ]; then
  ok "push prints IMAGE@DIGEST"
else
  bad "push printed '$(cat "$work/out")'"
fi
if [ "$(cat "$XDG_STATE_HOME/my-service/last-push")" = "$registry@$digest" ]; then
  ok "push records IMAGE@DIGEST for deploy"
else
  bad "push recorded nothing"
fi
expect push 64 "" -- "$registry:latest"
expect push 64 "" -- "$registry" extra

expect deploy 0 "gcloud|config|get-value|project
gcloud|run|deploy|svc|--image|$registry@$digest|--region|europe-west1|--update-env-vars|GOOGLE_CLOUD_PROJECT=my-proj|--allow-unauthenticated" \
  -- svc --region europe-west1 --allow-unauthenticated
expect deploy 0 "gcloud|run|deploy|svc|--image|other@sha256:abc|--region|r|--update-env-vars|GOOGLE_CLOUD_PROJECT=q|--project|q" \
  -- svc --region r other@sha256:abc --project q
expect deploy 64 "" -- svc --region r --image other:latest
expect deploy 64 "" -- svc other@sha256:abc
rm -f "$XDG_STATE_HOME/my-service/last-push"
expect deploy 64 "" -- svc --region r

printf '%s passed, %s failed\n' "$pass" "$failures"
[ "$failures" -eq 0 ]
