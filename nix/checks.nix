# `nix flake check` for the crate and the Nix files. The image checks live in image-check.nix
# and vm-test.nix; flake.nix adds them for x86_64-linux.
#
# Everything that compiles for the musl target (package, clippy, nextest) exists only when
# `package` is given, i.e. on x86_64-linux. rustfmt, audit and nixfmt compile nothing and run on
# every system.
{
  lib,
  runCommand,
  nixfmt,
  craneLib,
  advisory-db,
  crate,
  root,
  package ? null,
}:
let
  inherit (crate) commonArgs cargoArtifacts;
  inherit (commonArgs) src pname version;

  # The Nix files the flake sees. Inside a flake `root` holds only git-tracked files, so this
  # is exactly the tracked *.nix set.
  nixFiles = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.fileFilter (f: f.hasExt "nix") root;
  };

  everywhere = {
    # No artifacts, no vendoring: `cargo fmt -- --check` on the source only.
    rustfmt = craneLib.cargoFmt { inherit src pname version; };

    # Against the pinned advisory-db input (no fetch). crane filters the source down to
    # Cargo.lock, so only a lock file or advisory-db bump reruns it. The yanked-crate check
    # needs the crates.io index (network), so it is switched off through cargo-audit's
    # $CARGO_HOME/audit.toml fallback; a project .cargo/audit.toml would take precedence.
    audit = craneLib.cargoAudit {
      inherit
        src
        pname
        version
        advisory-db
        ;
      preBuild = ''
        printf '[yanked]\nenabled = false\nupdate_index = false\n' > "$CARGO_HOME/audit.toml"
      '';
    };

    nixfmt = runCommand "${pname}-nixfmt-check" { nativeBuildInputs = [ nixfmt ]; } ''
      cd ${nixFiles}
      find . -name '*.nix' -print0 | sort -z | xargs -0 --verbose nixfmt --check
      touch $out
    '';
  };

  musl = lib.optionalAttrs (package != null) {
    inherit package;

    clippy = craneLib.cargoClippy (
      commonArgs
      // {
        inherit cargoArtifacts;
        cargoClippyExtraArgs = "--all-targets -- --deny warnings";
      }
    );

    # Same tests as the package's check phase, via nextest (per-test process isolation and
    # timing). One partition, as in crane's quick-start; raise `partitions` to split the run
    # over several derivations when the suite grows.
    nextest = craneLib.cargoNextest (
      commonArgs
      // {
        inherit cargoArtifacts;
        partitions = 1;
        partitionType = "count";
        cargoNextestPartitionsExtraArgs = "--no-tests=pass";
      }
    );
  };
in
everywhere // musl
