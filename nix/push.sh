# nix run .#push -- LOCATION-docker.pkg.dev/PROJECT/REPO/NAME
#
# Copies the image tarball to Artifact Registry with skopeo (no Docker daemon), tagged with the
# crate version, prints IMAGE@DIGEST and records it for `nix run .#deploy`.
# Set by apps.nix: image (the docker-archive tarball), tag, default_policy, state_file.

usage() {
  echo "usage: nix run .#push -- LOCATION-docker.pkg.dev/PROJECT/REPO/NAME" >&2
  echo "  pushes $image as NAME:$tag and prints NAME@sha256:…" >&2
  exit 64
}

[ $# -eq 1 ] || usage
repo=$1
case $repo in
  -*) usage ;;
  *@* | *:*)
    echo "push: give the repository without tag or digest; the tag is the crate version ($tag)" >&2
    exit 64
    ;;
esac

# Credentials: an access token from the active gcloud account (`gcloud auth login`), or else
# whatever `skopeo login` / `gcloud auth configure-docker` already stored. The token is
# short-lived (1 h); it is visible in the process list of this machine while skopeo runs.
creds=()
if token=$(gcloud auth print-access-token 2>/dev/null) && [ -n "$token" ]; then
  creds=(--dest-creds "oauth2accesstoken:$token")
else
  echo "push: no gcloud access token; using existing registry credentials" >&2
fi

# skopeo insists on a signature policy. Use the machine's if it has one, else skopeo's own
# default (accept anything): the source is the tarball we just built.
policy=()
if [ ! -e "${XDG_CONFIG_HOME:-$HOME/.config}/containers/policy.json" ] && [ ! -e /etc/containers/policy.json ]; then
  policy=(--policy "$default_policy")
fi

digest_file=$(mktemp)
trap 'rm -f "$digest_file"' EXIT

skopeo "${policy[@]}" copy \
  --retry-times 3 \
  --digestfile "$digest_file" \
  "${creds[@]}" \
  "docker-archive:$image" \
  "docker://$repo:$tag"

digest=$(<"$digest_file")
pushed="$repo@$digest"
mkdir -p "$(dirname "$state_file")"
printf '%s\n' "$pushed" >"$state_file"
echo "push: $repo:$tag -> $pushed (recorded in $state_file)" >&2
echo "$pushed"
