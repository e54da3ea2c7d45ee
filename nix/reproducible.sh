#!/usr/bin/env bash
# nix/reproducible.sh [--canary]   (from the repository root, on x86_64-linux, with Nix)
#
# Builds what the image is made of, then builds each step again in check mode and requires
# identical output; on a difference it prints a diffoscope diff of the two outputs and exits 1.
# A check build rebuilds only the derivation it is given: Nix builds that derivation's inputs
# in normal mode (Nix 2.34 derivation-resolution-goal.cc), i.e. reuses them when registered.
# So every step is checked on its own derivation:
#   - the dependency build (crane's buildDepsOnly, the `cargoArtifacts` every cargo derivation
#     starts from): `--rebuild .#default` would reuse it, so it is reached through
#     .#default.cargoArtifacts (crane passes it to mkDerivation as an attribute) and rebuilt
#     with `nix-store --realise --check`;
#   - the binary (.#default): `nix build --rebuild`, on the registered dependency build;
#   - the customisation layer, where extraCommands and the fakeroot `tar` run: it is not a
#     flake output. It is reached through image-stream's passthru.conf (nixpkgs
#     pkgs/build-support/docker/default.nix `streamLayeredImage`: `passthru = { …; inherit
#     conf; }`, and conf.json's build script names `${customisationLayer}`, so the layer's .drv
#     is a direct input of conf's .drv), and rebuilt with `nix-store --realise --check`;
#   - conf.json, the same way (it holds the `created` date);
#   - the image tarball (.#image: the stream script piped through pigz): `nix build --rebuild`.
# A check rebuild replaces nothing: Nix compares the new output with the registered one and
# fails with "may not be deterministic"; with --keep-failed it keeps the new one at
# <output>.check (Nix 2.34 unix/build/derivation-builder.cc), which is what gets diffed.
#
# --canary: the same layer check on legacyPackages.x86_64-linux.reproducibility-canary
# (nix/reproducibility-canary.nix), an image whose layer also holds the build time. It must
# come out NOT reproducible; the script exits 0 only then, and 1 if the check could not tell
# (which would mean the check above proves nothing). No diff there: that the two builds differ
# is the expected result, and diffoscope would only be fetched to show it.
#
# Exit status: 0 all identical (canary: the difference was found); 1 a difference (canary:
# none found); 2 a rebuild failed for another reason, or the layer's derivation was not found;
# 64 usage. tests/reproducible.sh runs every outcome against stand-in nix/nix-store commands.
set -euo pipefail

cd "$(git rev-parse --show-toplevel)"

canary=false
case ${1:-} in
  "") ;;
  --canary) canary=true ;;
  *)
    echo "usage: nix/reproducible.sh [--canary]" >&2
    exit 64
    ;;
esac

nixflags=(--no-update-lock-file --print-build-logs)
mismatches=()

# diffoscope from the flake's own nixpkgs pin, fetched only when there is something to show.
# diffoscopeMinimal (pkgs/top-level/all-packages.nix: `diffoscope.override { enableBloat =
# false; }`) keeps the tar, gzip, zstd and binutils readers these outputs need and leaves out
# the JDK, GHC, QEMU and the other format tools of the full closure.
show_diff() {
  local a=$1 b=$1.check
  if [ ! -e "$b" ]; then
    echo "reproducible: $b was not kept; nothing to diff" >&2
    return 0
  fi
  echo "reproducible: diffoscope $a $b" >&2
  nix shell --inputs-from . nixpkgs#diffoscopeMinimal --command diffoscope "$a" "$b" || true
}

# check WHAT OUT COMMAND…: COMMAND rebuilds the already built OUT in check mode.
check() {
  local what=$1 out=$2 log
  shift 2
  log=$(mktemp)
  if "$@" 2>"$log"; then
    cat "$log" >&2
    echo "reproducible: $what: rebuilt bit-identical ($out)"
    rm -f "$log"
    return 0
  fi
  cat "$log" >&2
  if grep -q "may not be deterministic" "$log"; then
    echo "reproducible: $what: NOT reproducible" >&2
    $canary || show_diff "$out"
    mismatches+=("$what")
    rm -f "$log"
    return 0
  fi
  rm -f "$log"
  echo "reproducible: $what: the rebuild failed for another reason (see above)" >&2
  exit 2
}

# check_drv WHAT DRV: build DRV normally (a no-op if it is valid), then again in check mode.
check_drv() {
  local what=$1 drv=$2 out
  out=$(nix-store --realise "$drv")
  check "$what" "$out" nix-store --realise --check --keep-failed "$drv"
}

# check_attr WHAT INSTALLABLE: the same for a flake output, with nix build --rebuild.
check_attr() {
  local what=$1 installable=$2 out
  out=$(nix build "${nixflags[@]}" --no-link --print-out-paths "$installable")
  check "$what" "$out" nix build "${nixflags[@]}" --no-link --rebuild --keep-failed "$installable"
}

# layer_of CONF_DRV: the customisation layer's .drv among the direct inputs of conf.json's
# .drv; exactly one, or the script stops here with exit 2 (rather than handing nix-store an
# empty path).
layer_of() {
  local found
  found=$(nix-store --query --references "$1" | grep -- '-customisation-layer\.drv$' || true)
  if [ -z "$found" ] || [ "$(printf '%s\n' "$found" | wc -l)" -ne 1 ]; then
    echo "reproducible: expected one *-customisation-layer.drv among the inputs of $1, found: ${found:-none}" >&2
    echo "reproducible: (has nixpkgs' streamLayeredImage changed how conf.json names its layer?)" >&2
    return 2
  fi
  printf '%s\n' "$found"
}

if $canary; then
  conf=$(nix eval "${nixflags[@]}" --raw .#legacyPackages.x86_64-linux.reproducibility-canary.stream.conf.drvPath)
  layer=$(layer_of "$conf") || exit 2
  check_drv "canary customisation layer" "$layer"
  if [ ${#mismatches[@]} -eq 1 ]; then
    echo "reproducible: canary: the layer check failed on the non-reproducible layer, as it must"
    exit 0
  fi
  echo "reproducible: canary: the layer check did NOT notice a layer holding the build time" >&2
  exit 1
fi

deps=$(nix eval "${nixflags[@]}" --raw .#default.cargoArtifacts.drvPath)
check_drv "dependency build (cargoArtifacts)" "$deps"
check_attr "binary (.#default)" .#default
conf=$(nix eval "${nixflags[@]}" --raw .#image-stream.conf.drvPath)
layer=$(layer_of "$conf") || exit 2
check_drv "customisation layer" "$layer"
check_drv "image config (conf.json)" "$conf"
check_attr "image tarball (.#image)" .#image

if [ ${#mismatches[@]} -ne 0 ]; then
  echo "reproducible: NOT reproducible: ${mismatches[*]}" >&2
  exit 1
fi
echo "reproducible: dependencies, binary, layer, config and image all rebuilt bit-identical"
