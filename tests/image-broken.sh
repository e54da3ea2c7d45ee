#!/usr/bin/env bash
# tests/image.sh can fail: images that are wrong in one way each, assembled by .ci/musl-image,
# must each be rejected by it, for that reason.
#
#   tests/image-broken.sh BINARY     BINARY: the musl binary the good image holds
#
#   a shell added        bin/sh in the layer                       -> "FAIL no shell"
#   user root            User 0:0                                  -> "FAIL User 0:0 numeric and not root"
#   no Entrypoint        the config without it                     -> "FAIL Entrypoint exec form"
#   SIGTERM ignored      the service built with its SIGTERM handler on SIGUSR1 instead: as PID 1
#                        it then ignores SIGTERM, and `docker stop` waits for the SIGKILL
#                                                                  -> "FAIL docker stop: exit code 137"
#
# The last one is a real build of this checkout's copy with one line changed (about a minute:
# only the crate itself compiles, against a hard-linked copy of target/, which stays untouched).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: tests/image-broken.sh BINARY" >&2
  exit 64
fi
binary=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=tests/tally.sh
. "$repo/tests/tally.sh"

# rejected NAME WANT [.ci/musl-image args…]: assembles the image, runs tests/image.sh on it
# against the real description; it must exit non-zero with the line WANT in its output.
rejected() {
  local name=$1 want=$2 status=0
  shift 2
  "$repo/.ci/musl-image" --out "$work/$name.tar.gz" "$@" >/dev/null
  "$repo/tests/image.sh" "$work/$name.tar.gz" >"$work/$name.out" 2>&1 || status=$?
  if [ "$status" != 0 ] && grep -qF -- "$want" "$work/$name.out"; then
    ok "$name: rejected ($(grep -F -m1 -- "$want" "$work/$name.out"))"
  else
    bad "$name: tests/image.sh exited $status without \"$want\":"$'\n'"$(sed 's/^/    /' "$work/$name.out")"
  fi
}

# describe NAME JQ: nix/image.json edited by JQ.
describe() { jq "$2" "$repo/nix/image.json" >"$work/$1.json"; }

describe shell '.files += [{"path": "bin/sh", "mode": "0555", "from": "shell"}]'
rejected shell "FAIL no shell" --description "$work/shell.json" --binary "$binary" \
  --source "shell=$(command -v dash || command -v sh)"

describe root '.config.User = "0:0"'
rejected root "FAIL User 0:0 numeric and not root" --description "$work/root.json" --binary "$binary"

describe no-entrypoint 'del(.config.Entrypoint)'
rejected no-entrypoint "FAIL Entrypoint exec form" --description "$work/no-entrypoint.json" --binary "$binary"

echo "--- building the service with SIGTERM unhandled"
mkdir "$work/src"
(cd "$repo" && git ls-files -z | xargs -0 cp --parents -t "$work/src")
sed -i 's/signal(SignalKind::terminate())/signal(SignalKind::user_defined1())/' "$work/src/src/shutdown.rs"
grep -q 'user_defined1' "$work/src/src/shutdown.rs" || {
  echo "FAIL src/shutdown.rs no longer has signal(SignalKind::terminate()): update this test" >&2
  exit 1
}
# Hard links: the copy's build finds every dependency fresh and replaces, never rewrites, the
# files it shares with target/ (cargo unlinks an output before writing it).
cp -al "${CARGO_TARGET_DIR:-$repo/target}" "$work/target"
deaf=$(cd "$work/src" && CARGO_TARGET_DIR=$work/target .ci/musl-build | tail -n 1)
rejected sigterm-ignored "FAIL docker stop: exit code 137" --binary "$deaf"

tally image-broken
