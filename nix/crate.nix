# The crate as crane sees it: one filtered source, the arguments every cargo derivation shares,
# and the dependency build they all reuse.
{
  lib,
  craneLib,
  root,
  cargoTarget,
}:
let
  # Only what cargo reads: Cargo.toml/Cargo.lock, *.rs and *.toml (crane's commonCargoSources).
  # A README, workflow or *.nix edit therefore changes no derivation below and rebuilds nothing.
  # Cost: any other file a build or test needs (include_str! assets, fixtures) must be added
  # here by name; the tests need none today.
  # Left out as well, so that editing them rebuilds nothing: fuzz/ (its own cargo workspace,
  # run with `cargo fuzz`, not part of this build) and tests/scratch-root.sh (needs root, so
  # .ci/run runs it, never the sandbox; not a cargo file, excluded should the selection widen).
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.difference (craneLib.fileset.commonCargoSources root) (
      lib.fileset.unions [
        (lib.fileset.maybeMissing (root + "/fuzz"))
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
