# nix run .#push -- LOCATION-docker.pkg.dev/PROJECT/REPO/NAME
#
# Copies the image tarball to Artifact Registry (or any registry) with skopeo, no Docker
# daemon, tagged with the crate version; prints IMAGE@DIGEST on stdout, the only line there, and
# records it for `nix run .#deploy`:  img=$(nix run .#push -- …)
# PUSH_TLS_VERIFY=false: plain HTTP, for a local test registry only (skopeo
# --dest-tls-verify=false).
# Set by apps.nix: image (the docker-archive tarball), tag, default_policy, system_policy,
# state_file.

usage() {
  echo "usage: nix run .#push -- LOCATION-docker.pkg.dev/PROJECT/REPO/NAME" >&2
  echo "  pushes $image as NAME:$tag and prints NAME@sha256:…" >&2
  exit 64
}

[ $# -eq 1 ] || usage
repo=$1
case $repo in -* | "") usage ;; esac
# Only a `:` after the last `/` is a tag: a registry host may carry a port
# (localhost:5000/team/app).
if [[ $repo == *@* || ${repo##*/} == *:* ]]; then
  echo "push: give the repository without tag or digest; the tag is the crate version ($tag)" >&2
  exit 64
fi
# HOST/PATH, with HOST told from a path component as Docker's reference parsing does
# (distribution/reference splitDockerDomain): it has a `.` or a `:`, or is `localhost`.
registry=${repo%%/*}
[[ $repo == */?* && ($registry == *[.:]* || $registry == localhost) ]] || usage

tls=()
case ${PUSH_TLS_VERIFY:-true} in
  true) ;;
  false) tls=(--dest-tls-verify=false) ;;
  *)
    echo "push: PUSH_TLS_VERIFY is true or false, not '$PUSH_TLS_VERIFY'" >&2
    exit 64
    ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Credentials: an access token from the active gcloud account (`gcloud auth login`), handed to
# skopeo in an auth file only this user can read, removed on exit: never on a command line,
# where every user of the machine could read it (/proc/PID/cmdline). Without a token, whatever
# `skopeo login` / `gcloud auth configure-docker` already stored.
auth=()
if token=$(gcloud auth print-access-token 2>/dev/null) && [ -n "$token" ]; then
  # printf is a builtin: the token reaches base64 on its standard input, not as an argument.
  basic=$(printf 'oauth2accesstoken:%s' "$token" | base64 -w0)
  (
    umask 077
    printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$registry" "$basic" >"$work/auth.json"
  )
  auth=(--dest-authfile "$work/auth.json")
else
  echo "push: no gcloud access token; using existing registry credentials" >&2
fi

# skopeo insists on a signature policy. Use the machine's if it has one, else skopeo's own
# default (accept anything): the source is the tarball we just built. containers/image looks
# for $HOME/.config/containers/policy.json, then the system's (signature/policy_config.go
# defaultPolicyPathWithHomeDir; it does not read XDG_CONFIG_HOME).
policy=()
if [ ! -e "${HOME:-/nonexistent}/.config/containers/policy.json" ] && [ ! -e "$system_policy" ]; then
  policy=(--policy "$default_policy")
fi

# Any skopeo gets an uncompressed archive: Debian 12's skopeo 1.9.3 refuses a gzipped
# docker-archive ("loading tar component manifest.json: archive/tar: invalid tar header").
archive=$image
if [ "$(head -c 2 "$image" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
  archive=$work/image.tar
  gzip -dc "$image" >"$archive"
fi

# skopeo reports progress on stdout; it goes to stderr so that stdout is the digest alone.
skopeo "${policy[@]}" copy \
  --retry-times 3 \
  --digestfile "$work/digest" \
  "${auth[@]}" \
  "${tls[@]}" \
  "docker-archive:$archive" \
  "docker://$repo:$tag" >&2

digest=$(<"$work/digest")
pushed="$repo@$digest"
mkdir -p "$(dirname "$state_file")"
printf '%s\n' "$pushed" >"$state_file"
echo "push: $repo:$tag -> $pushed (recorded in $state_file)" >&2
echo "$pushed"
