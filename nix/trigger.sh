# nix run .#trigger -- SERVICE --region REGION (--topic TOPIC | --bucket BUCKET) [gcloud args…]
#
# Creates an Eventarc trigger whose destination is SERVICE's `POST /events`: one event per
# message published to TOPIC (Pub/Sub), or per object finalized (created or overwritten) in
# BUCKET (Cloud Storage). Eventarc delivers them in CloudEvents binary mode, which
# src/routes/events.rs receives. Extra arguments go to `gcloud eventarc triggers create`
# (e.g. --service-account=SA_EMAIL, --project=PROJECT); the flags are those of
# https://cloud.google.com/sdk/gcloud/reference/eventarc/triggers/create. The trigger lives in
# REGION unless --location says otherwise: a Cloud Storage trigger must be in the bucket's
# location (https://cloud.google.com/eventarc/docs/run/route-trigger-cloud-storage).

usage() {
  echo "usage: nix run .#trigger -- SERVICE --region REGION (--topic TOPIC | --bucket BUCKET) [--name NAME] [--location LOCATION] [gcloud eventarc triggers create args…]" >&2
  exit 64
}

[ $# -ge 1 ] || usage
service=$1
shift
case $service in -* | "") usage ;; esac

region=""
location=""
topic=""
bucket=""
name=""
extra=()
# --opt VALUE and --opt=VALUE alike; `value` is what the option carried.
while [ $# -gt 0 ]; do
  opt=$1
  case $opt in
    --region | --location | --topic | --bucket | --name)
      [ $# -ge 2 ] || usage
      value=$2
      shift 2
      ;;
    --region=* | --location=* | --topic=* | --bucket=* | --name=*)
      value=${opt#*=}
      opt=${opt%%=*}
      shift
      ;;
    *)
      extra+=("$opt")
      shift
      continue
      ;;
  esac
  [ -n "$value" ] || usage
  case $opt in
    --region) region=$value ;;
    --location) location=$value ;;
    --topic) topic=$value ;;
    --bucket) bucket=$value ;;
    --name) name=$value ;;
  esac
done

[ -n "$region" ] || usage
if [ -n "$topic" ] && [ -n "$bucket" ]; then
  echo "trigger: give --topic or --bucket, not both (one trigger per event source)" >&2
  exit 64
fi
location=${location:-$region}

# Event types: https://cloud.google.com/eventarc/docs/reference/supported-events
if [ -n "$topic" ]; then
  source_desc="messages published to Pub/Sub topic $topic"
  filters=(--event-filters="type=google.cloud.pubsub.topic.v1.messagePublished" --transport-topic="$topic")
  default_name="$service-pubsub-${topic##*/}"
elif [ -n "$bucket" ]; then
  source_desc="objects finalized in Cloud Storage bucket $bucket"
  filters=(--event-filters="type=google.cloud.storage.object.v1.finalized" --event-filters="bucket=$bucket")
  default_name="$service-storage-$bucket"
else
  usage
fi

# Trigger ids: lowercase letters, digits and hyphens, starting with a letter and ending with a
# letter or digit, at most 63. The default starts with SERVICE (a Cloud Run service name starts
# with a letter); cutting at 63 can leave one or more hyphens at the end (a replaced "." or "_"
# next to the cut), so all of them go.
if [ -z "$name" ]; then
  name=$(printf '%s' "$default_name" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9-' '-' | cut -c1-63)
  while [ "${name%-}" != "$name" ]; do
    name=${name%-}
  done
fi

echo "trigger: $name in $location: $source_desc -> Cloud Run service $service ($region) POST /events" >&2
exec gcloud eventarc triggers create "$name" \
  --location="$location" \
  --destination-run-service="$service" \
  --destination-run-region="$region" \
  --destination-run-path=/events \
  "${filters[@]}" \
  "${extra[@]}"
