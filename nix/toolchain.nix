# The Rust toolchain, from one source of truth: `rust-toolchain.toml` (the file rustup reads
# outside Nix). rust-overlay turns it into a prebuilt toolchain, so nothing compiles rustc.
#
# Returns functions `pkgs -> toolchain`, the form crane's `overrideToolchain` prefers: crane calls
# it once per spliced package set, which keeps it correct should this ever cross-compile.
{ lib, rustToolchainFile }:
let
  # channel = "1.95.0", profile = "minimal", components = [ "rustfmt" "clippy" ]
  pinned = (lib.importTOML rustToolchainFile).toolchain;

  # Cloud Run runs linux/amd64. musl plus `+crt-static` (see crate.nix) gives a binary with no
  # loader and no libc to ship, which is what lets the image hold nothing else. The target's
  # rust-std is a download for any host, so every system's toolchain carries it and stays "the
  # same toolchain"; only x86_64-linux builds for it. Elsewhere the package is a native build
  # (crate.nix `cargoTarget = null`) and the musl std sits unused.
  target = "x86_64-unknown-linux-musl";

  withComponents =
    extra: pkgs:
    pkgs.rust-bin.fromRustupToolchain (
      pinned
      // {
        components = (pinned.components or [ ]) ++ extra;
        targets = lib.unique ((pinned.targets or [ ]) ++ [ target ]);
      }
    );
in
{
  inherit target;
  inherit (pinned) channel;

  # Build, every check and the dependency cache share this one derivation: crane's artifacts
  # are only reusable with the identical compiler.
  build = withComponents [ ];

  # Same channel, profile and target plus editor support. `rust-src` (for rust-analyzer's std
  # indexing) is a separate toolchain derivation that only the dev shell references. It cannot
  # reach the package or the image: the build uses `build` above, crane rewrites the remaining
  # toolchain paths in the binary (removeReferencesToRustToolchainHook), and package.nix sets
  # `allowedReferences = [ ]`, so any store path that slipped through fails the build.
  dev = withComponents [
    "rust-src"
    "rust-analyzer"
  ];
}
