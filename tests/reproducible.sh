#!/usr/bin/env bash
# nix/reproducible.sh's control flow without Nix: stand-in `nix` and `nix-store` commands on
# PATH answer its evaluations, builds and check-mode rebuilds the way Nix does (a check rebuild
# whose output differs fails with "may not be deterministic" and, with --keep-failed, leaves
# <output>.check), and record every call. Each case decides which rebuilds differ and asserts
# the exit status, the message and the calls: that every step is rebuilt in check mode, that a
# difference is diffed with diffoscopeMinimal (and never in canary mode), and that the canary
# passes only when its layer check fails.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=tests/tally.sh
. "$repo/tests/tally.sh"

# The store: STORE/<key>.drv builds STORE/<key>. Keys: deps (the dependency build), binary,
# layer (image-customisation-layer.drv), conf, image, canary-layer
# (canary-customisation-layer.drv), canary-conf. The environment of each case says which
# check-mode rebuilds differ (DIFFER), fail otherwise (BROKEN), and whether conf.json's inputs
# hold a layer (NO_LAYER).
export STORE=$work/store CALLS=$work/calls
mkdir -p "$STORE" "$work/bin"
cat >"$work/bin/nix-standin-lib" <<'STANDIN'
# Sourced by the stand-ins: `build KEY CHECK` realises STORE/KEY, in check mode if CHECK=1.
build() {
  local key=$1 check=$2 out=$STORE/$1
  : >"$out"
  if [ "$check" = 1 ]; then
    case " ${BROKEN:-} " in *" $key "*)
      echo "error: builder for '$out.drv' failed with exit code 1" >&2
      return 1 ;;
    esac
    case " ${DIFFER:-} " in *" $key "*)
      : >"$out.check"
      echo "error: derivation '$out.drv' may not be deterministic: output '$out' differs from '$out.check'" >&2
      return 1 ;;
    esac
    return 0
  fi
  echo "$out"
}
STANDIN
cat >"$work/bin/nix" <<'STANDIN'
#!/usr/bin/env bash
(IFS='|'; printf 'nix|%s\n' "$*") >>"$CALLS"
. "$(dirname "$0")/nix-standin-lib"
installable=${*: -1}
case $1 in
  eval)
    case $installable in
      .#default.cargoArtifacts.drvPath) printf '%s' "$STORE/deps.drv" ;;
      .#image-stream.conf.drvPath) printf '%s' "$STORE/conf.drv" ;;
      .#legacyPackages.x86_64-linux.reproducibility-canary.stream.conf.drvPath) printf '%s' "$STORE/canary-conf.drv" ;;
      *) echo "error: flake does not provide attribute '$installable'" >&2; exit 1 ;;
    esac
    ;;
  build)
    case $installable in
      .#default) key=binary ;;
      .#image) key=image ;;
      *) echo "error: flake does not provide attribute '$installable'" >&2; exit 1 ;;
    esac
    case " $* " in *" --rebuild "*) build "$key" 1 ;; *) build "$key" 0 ;; esac
    ;;
  shell) echo "diffoscope stand-in: ${*: -2}" ;;
  *) echo "nix stand-in: unexpected: $*" >&2; exit 1 ;;
esac
STANDIN
cat >"$work/bin/nix-store" <<'STANDIN'
#!/usr/bin/env bash
(IFS='|'; printf 'nix-store|%s\n' "$*") >>"$CALLS"
. "$(dirname "$0")/nix-standin-lib"
drv=${*: -1}
case $drv in
  "$STORE"/*.drv) key=${drv#"$STORE"/}; key=${key%.drv} ;;
  *) echo "error: path '$drv' is not in the Nix store" >&2; exit 1 ;;
esac
case "$1 $2" in
  "--query --references")
    echo "$STORE/bash-5.3.drv"
    prefix=${key%conf}
    [ -n "${NO_LAYER:-}" ] || echo "$STORE/${prefix:-image-}customisation-layer.drv"
    echo "$STORE/jq-1.8.drv"
    ;;
  "--realise --check") key=${key/customisation-layer/layer} && build "${key#image-}" 1 ;;
  "--realise "*) key=${key/customisation-layer/layer} && build "${key#image-}" 0 ;;
  *) echo "nix-store stand-in: unexpected: $*" >&2; exit 1 ;;
esac
STANDIN
chmod +x "$work/bin/nix" "$work/bin/nix-store"

# run NAME WANT_STATUS [--canary]: runs the script with the stand-ins (environment as set by
# the caller), then checks its exit status; the output is in $work/out and $work/err.
run() {
  local name=$1 want=$2 status=0
  shift 2
  rm -f "$STORE"/*
  : >"$CALLS"
  PATH=$work/bin:$PATH "$repo/nix/reproducible.sh" "$@" >"$work/out" 2>"$work/err" || status=$?
  if [ "$status" = "$want" ]; then
    ok "$name: exit $status"
  else
    bad "$name: exit $status, want $want; stderr:"$'\n'"$(cat "$work/err")"
  fi
}
# has WHAT FILE PATTERN: FILE ($work/out, $work/err or $CALLS) has a line matching PATTERN.
has() {
  if grep -qE -- "$3" "$2"; then ok "$1"; else bad "$1: no line matching '$3' in $(basename "$2")"; fi
}
hasnt() {
  if ! grep -qE -- "$3" "$2"; then ok "$1"; else bad "$1: a line matches '$3' in $(basename "$2")"; fi
}
diffed() { # the diffoscope call for KEY's output and its .check
  printf 'nix\\|shell\\|--inputs-from\\|\\.\\|nixpkgs#diffoscopeMinimal\\|--command\\|diffoscope\\|%s\\|%s\\.check$' "$STORE/$1" "$STORE/$1"
}

# 1. Everything identical: each of the five steps rebuilt in check mode, nothing diffed.
DIFFER="" BROKEN="" NO_LAYER="" run "identical" 0
has "identical: says so" "$work/out" "dependencies, binary, layer, config and image all rebuilt bit-identical"
has "identical: the dependency build rebuilt in check mode" "$CALLS" "^nix-store\|--realise\|--check\|--keep-failed\|$STORE/deps\.drv$"
has "identical: the binary rebuilt in check mode" "$CALLS" "^nix\|build\|.*\|--rebuild\|--keep-failed\|\.#default$"
has "identical: the layer rebuilt in check mode" "$CALLS" "^nix-store\|--realise\|--check\|--keep-failed\|$STORE/image-customisation-layer\.drv$"
has "identical: conf.json rebuilt in check mode" "$CALLS" "^nix-store\|--realise\|--check\|--keep-failed\|$STORE/conf\.drv$"
has "identical: the image rebuilt in check mode" "$CALLS" "^nix\|build\|.*\|--rebuild\|--keep-failed\|\.#image$"
hasnt "identical: nothing diffed" "$CALLS" "^nix\|shell"

# 2.-4. One step differs: exit 1, named, diffed with diffoscopeMinimal; the other steps still run.
for key in layer binary deps; do
  case $key in
    layer) what="customisation layer" ;;
    binary) what="binary (.#default)" ;;
    deps) what="dependency build (cargoArtifacts)" ;;
  esac
  DIFFER=$key BROKEN="" NO_LAYER="" run "$key differs" 1
  has "$key differs: named" "$work/err" "^reproducible: NOT reproducible: ${what//[().#]/.}$"
  has "$key differs: diffed" "$CALLS" "$(diffed "$key")"
  has "$key differs: the image is still checked" "$CALLS" "^nix\|build\|.*\|--rebuild\|--keep-failed\|\.#image$"
done
# The layer is diffed where Nix keeps it: the output of the layer's derivation.
DIFFER="layer" BROKEN="" NO_LAYER="" run "layer differs (again)" 1
hasnt "layer differs: only the layer is diffed" "$CALLS" "diffoscope\|$STORE/(deps|binary|conf|image)\|"

# 5. The canary's layer differs, as it must: exit 0, and no diffoscope.
DIFFER="canary-layer" BROKEN="" NO_LAYER="" run "canary differs, as it must" 0 --canary
has "canary differs: says so" "$work/out" "the layer check failed on the non-reproducible layer, as it must"
has "canary differs: its layer rebuilt in check mode" "$CALLS" "^nix-store\|--realise\|--check\|--keep-failed\|$STORE/canary-customisation-layer\.drv$"
has "canary: evaluated without --impure" "$CALLS" "^nix\|eval\|.*\.#legacyPackages\.x86_64-linux\.reproducibility-canary\.stream\.conf\.drvPath$"
hasnt "canary: never --impure" "$CALLS" "--impure"
hasnt "canary differs: nothing diffed (the difference is the point)" "$CALLS" "^nix\|shell"

# 6. The canary's layer rebuilds identical: the check proved nothing, exit 1.
DIFFER="" BROKEN="" NO_LAYER="" run "canary identical" 1 --canary
has "canary identical: says so" "$work/err" "the layer check did NOT notice a layer holding the build time"

# Also: no layer among conf.json's inputs (its own message, not nix-store's on an empty path);
# a rebuild failing for another reason; a wrong argument.
DIFFER="" BROKEN="" NO_LAYER=1 run "no layer found" 2
has "no layer found: says which derivation it searched" "$work/err" "expected one \*-customisation-layer\.drv among the inputs of $STORE/conf\.drv, found: none"
hasnt "no layer found: nothing realised with an empty path" "$CALLS" "^nix-store\|--realise\|(--check\|--keep-failed\|)?$"
DIFFER="" BROKEN="" NO_LAYER=1 run "canary, no layer found" 2 --canary
DIFFER="" BROKEN="conf" NO_LAYER="" run "conf.json's rebuild fails for another reason" 2
has "another failure: says so" "$work/err" "image config \(conf\.json\): the rebuild failed for another reason"
DIFFER="" BROKEN="" NO_LAYER="" run "unknown argument" 64 --canry

tally reproducible
