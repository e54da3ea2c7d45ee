# The image with one deliberately non-reproducible line: its customisation layer also holds
# /build-time, the time the layer was built. `nix/reproducible.sh --canary` builds it, rebuilds
# the layer and requires the rebuild to differ: the proof that the reproducibility check can
# fail. Not a flake output; nothing else uses it.
#
#   nix build --impure --file nix/reproducibility-canary.nix
#
# It overrides the `dockerTools` argument image.nix is called with (flake.nix uses
# callPackage, whose `override` takes a function of the original arguments: nixpkgs
# lib/customisation.nix `makeOverridable`), so everything else is the real image's.
{
  flake ? builtins.getFlake (toString ../.),
  system ? "x86_64-linux",
}:
flake.packages.${system}.image.override (old: {
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
})
