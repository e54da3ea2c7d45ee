# The crate as crane sees it: one filtered source, the arguments every cargo derivation shares,
# and the dependency build they all reuse.
{
  lib,
  craneLib,
  root,
  # "x86_64-unknown-linux-musl" for the static binary the image ships (x86_64-linux), or null
  # for a native build of the same source on any other system (package.nix).
  cargoTarget,
}:
let
  # What cargo reads: Cargo.toml/Cargo.lock, *.rs and *.toml (crane's commonCargoSources,
  # lib/fileset/commonCargoSources.nix at b8d87f7: cargoTomlAndLock + rust + toml), minus the
  # files below. A README, workflow or *.nix edit therefore changes no derivation below and
  # rebuilds nothing. Cost: any other file a build or test needs (include_str! assets,
  # fixtures) must be added here by name; the tests need none today.
  # Taken out again, so that editing them rebuilds nothing:
  #   - fuzz/: its own cargo workspace, run with `cargo fuzz`, not part of this build;
  #   - bench/: harness.rs is a *.rs that is no cargo target (no [[bench]], not benches/),
  #     run by bench/run.sh outside Nix;
  #   - rust-toolchain.toml: read by rustup outside Nix; cargo in the sandbox is rust-overlay's
  #     and ignores it. The toolchain still comes from that file: flake.nix passes it to
  #     toolchain.nix as its own path (`./rust-toolchain.toml`), not through this source;
  #   - tests/scratch-root.sh: needs root, so .ci/run runs it, never the sandbox (not a cargo
  #     file; excluded should the selection widen).
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.difference (craneLib.fileset.commonCargoSources root) (
      lib.fileset.unions [
        (lib.fileset.maybeMissing (root + "/fuzz"))
        (lib.fileset.maybeMissing (root + "/bench"))
        (lib.fileset.maybeMissing (root + "/rust-toolchain.toml"))
        (lib.fileset.maybeMissing (root + "/tests/scratch-root.sh"))
      ]
    );
  };

  commonArgs = {
    inherit src;
    # Read at evaluation time from the checkout (no import-from-derivation).
    inherit (craneLib.crateNameFromCargoToml { cargoToml = root + "/Cargo.toml"; }) pname version;
    # Build tools in nativeBuildInputs, target libraries in buildInputs, never mixed.
    strictDeps = true;
    # No CARGO_PROFILE: crane's default, release, is the profile package.nix's build command
    # hard-codes (see there before changing it).
  }
  // lib.optionalAttrs (cargoTarget != null) {
    # cargo's `build.target` and `build.rustflags`. With a target set, the rustflags reach only
    # target artifacts, not build scripts or proc-macros. Both must be identical in
    # buildDepsOnly and in every later derivation, or cargo rebuilds all dependencies.
    CARGO_BUILD_TARGET = cargoTarget;
    CARGO_BUILD_RUSTFLAGS = "-C target-feature=+crt-static";
  };

  # Dependencies built once (`cargo check`, `cargo build`, `cargo test --no-run`, release
  # profile), then reused by the package, clippy and nextest. Invalidated only by Cargo.lock,
  # Cargo.toml, the toolchain or commonArgs, not by edits under src/ or tests/.
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
in
{
  inherit src commonArgs cargoArtifacts;
}
