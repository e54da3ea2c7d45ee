# nix run .#deploy -- SERVICE --region REGION [IMAGE@DIGEST] [extra `gcloud run deploy` args…]
#
# Deploys by digest (never by tag, so the revision runs exactly what was pushed) and sets
# GOOGLE_CLOUD_PROJECT so the service's logs carry Cloud Trace correlation. Without
# IMAGE@DIGEST it deploys what `nix run .#push` recorded last. Set by apps.nix: state_file.

usage() {
  echo "usage: nix run .#deploy -- SERVICE --region REGION [IMAGE@sha256:…] [gcloud run deploy args…]" >&2
  exit 64
}

[ $# -ge 1 ] || usage
service=$1
shift
case $service in -* | "") usage ;; esac

region=""
image=""
project=""
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --region)
      [ $# -ge 2 ] || usage
      region=$2
      shift 2
      ;;
    --region=*)
      region=${1#--region=}
      shift
      ;;
    --project)
      [ $# -ge 2 ] || usage
      project=$2
      extra+=("$1" "$2")
      shift 2
      ;;
    --project=*)
      project=${1#--project=}
      extra+=("$1")
      shift
      ;;
    --image | --image=*)
      echo "deploy: pass the image as IMAGE@sha256:… (deploys go by digest)" >&2
      exit 64
      ;;
    -*)
      extra+=("$1")
      shift
      ;;
    *@sha256:*)
      image=$1
      shift
      ;;
    *)
      extra+=("$1")
      shift
      ;;
  esac
done

[ -n "$region" ] || usage
if [ -z "$image" ]; then
  [ -s "$state_file" ] || {
    echo "deploy: no IMAGE@DIGEST given and nothing recorded in $state_file; run nix run .#push first" >&2
    exit 64
  }
  image=$(<"$state_file")
fi
case $image in
  *@sha256:*) ;;
  *)
    echo "deploy: $image is not IMAGE@sha256:…" >&2
    exit 64
    ;;
esac

# The project the service runs in: --project if given, else gcloud's configured project.
if [ -z "$project" ]; then
  project=$(gcloud config get-value project 2>/dev/null || true)
fi
[ -n "$project" ] || {
  echo "deploy: no project; pass --project PROJECT or run gcloud config set project PROJECT" >&2
  exit 64
}

echo "deploy: $service in $project/$region <- $image" >&2
exec gcloud run deploy "$service" \
  --image "$image" \
  --region "$region" \
  --update-env-vars "GOOGLE_CLOUD_PROJECT=$project" \
  "${extra[@]}"
