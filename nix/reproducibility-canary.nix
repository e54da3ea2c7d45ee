# The image with one deliberately non-reproducible line: its customisation layer also holds
# /build-time, the time the layer was built. `nix/reproducible.sh --canary` builds it, rebuilds
# the layer and requires the rebuild to differ: the proof that the reproducibility check can
# fail. flake.nix exposes it as legacyPackages.x86_64-linux.reproducibility-canary, which
# `nix flake check` neither builds nor lists as a package; nothing else uses it.
#
#   nix build .#legacyPackages.x86_64-linux.reproducibility-canary
#
# It overrides the `dockerTools` argument image.nix is called with (flake.nix uses
# callPackage, whose `override` takes a function of the original arguments: nixpkgs
# lib/customisation.nix `makeOverridable`), so everything else is the real image's.
{
  lib,
  image,
}:
let
  canary = image.override (old: {
    dockerTools = old.dockerTools // {
      buildLayeredImage =
        args:
        old.dockerTools.buildLayeredImage (
          args
          // {
            extraCommands = args.extraCommands + ''
              date +%s%N > build-time
            '';
          }
        );
    };
  });
in
# The extra line must reach the layer, so conf.json (whose build names the layer) must differ
# from the image's; if image.nix stopped calling dockerTools.buildLayeredImage, the override
# would change nothing and the canary would be the image itself. Said at evaluation time,
# before anything is built.
assert lib.assertMsg (canary.stream.conf.drvPath != image.stream.conf.drvPath)
  "reproducibility-canary: the override did not reach the image's layer (does nix/image.nix still call dockerTools.buildLayeredImage?)";
canary
