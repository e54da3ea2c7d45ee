# `nix flake check` for the crate and the Nix files. The image checks live in image-check.nix
# and vm-test.nix; flake.nix adds them for x86_64-linux.
#
# On every system: the package (its tests run in its build), `cargo audit bin` on it, rustfmt,
# the Cargo.lock audit and nixfmt. Only with `linuxSuite` (x86_64-linux, where the package is
# the static musl binary the image ships): clippy and nextest for the musl target.
{
  lib,
  runCommand,
  cargo-audit,
  nixfmt,
  craneLib,
  advisory-db,
  crate,
  root,
  package,
  linuxSuite ? false,
}:
let
  inherit (crate) commonArgs cargoArtifacts;
  inherit (commonArgs) src pname version;

  # The Nix files the flake sees. Assumes the flake is used from a git checkout (`nix flake
  # check` in a clone, or github:…): then `root` holds only git-tracked files (staged ones
  # included), so this is exactly the tracked *.nix set. From a `path:` flake or a plain
  # directory `root` is the whole tree, untracked files included; so is the crate source
  # (crate.nix).
  nixFiles = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.fileFilter (f: f.hasExt "nix") root;
  };

  # crane already passes `-n` (no fetch), so the yanked-crate check cannot reach the network;
  # with an empty crates.io index cache it prints one `couldn't check if the package is
  # yanked` error per crate and still exits 0 (cargo-audit src/auditor.rs
  # `check_for_yanked_crates`). This only silences those lines: `[yanked] enabled = false`
  # (config.rs YankedConfig) in $CARGO_HOME/audit.toml, which cargo-audit reads when there is
  # no ./.cargo/audit.toml (commands.rs `config_path`). `--ignore yanked` would not do it: it
  # names an advisory id. cargo-audit >= 0.22 has `--no-yanked` instead.
  noYankedCheck = ''
    printf '[yanked]\nenabled = false\nupdate_index = false\n' > "$CARGO_HOME/audit.toml"
  '';

  everywhere = {
    # The package; its check phase runs the tests (package.nix).
    inherit package;

    # No artifacts, no vendoring: `cargo fmt -- --check` on the source only.
    rustfmt = craneLib.cargoFmt { inherit src pname version; };

    # Cargo.lock against the pinned advisory-db input. crane runs `cargo audit -n -d <db>
    # --ignore yanked` (lib/cargoAudit.nix) and filters the source down to Cargo.lock, so
    # nothing is fetched and only a lock file or advisory-db bump reruns it.
    audit = craneLib.cargoAudit {
      inherit
        src
        pname
        version
        advisory-db
        ;
      preBuild = noYankedCheck;
    };

    # The built binary against the same advisory-db: `cargo audit bin` reads the dependency
    # list cargo auditable embedded (package.nix), i.e. the crates actually linked for this
    # target, where `audit` reads all of Cargo.lock (dev-dependencies and other platforms
    # too). Options go before the subcommand (`bin` is a subcommand of `audit`, src/commands/
    # audit.rs); exit 1 on a vulnerability, 2 on an error (binary_scanning.rs `run`). Both
    # read the same at cargo-audit v0.21.2, nixpkgs' version in the nearest stored copy, and
    # v0.22.2; binary scanning is a default feature of both, which nixpkgs keeps.
    audit-bin = runCommand "${pname}-audit-bin-${version}" { nativeBuildInputs = [ cargo-audit ]; } ''
      set -o pipefail
      export CARGO_HOME=$PWD/cargo-home
      mkdir -p "$CARGO_HOME"
      ${noYankedCheck}
      cargo-audit audit --no-fetch --db ${advisory-db} bin ${lib.getExe package} | tee $out
    '';

    nixfmt = runCommand "${pname}-nixfmt-check" { nativeBuildInputs = [ nixfmt ]; } ''
      cd ${nixFiles}
      find . -name '*.nix' -print0 | sort -z | xargs -0 --verbose nixfmt --check
      touch $out
    '';
  };

  musl = lib.optionalAttrs linuxSuite {
    clippy = craneLib.cargoClippy (
      commonArgs
      // {
        inherit cargoArtifacts;
        cargoClippyExtraArgs = "--all-targets -- --deny warnings";
      }
    );

    # Same tests as the package's check phase, via nextest (per-test process isolation and
    # timing). One partition, as in crane's quick-start. Do not raise `partitions` as the
    # tests are today: with more than one, crane builds a `cargo nextest archive` and runs
    # each partition from it in another derivation (lib/cargoNextest.nix, `--workspace-remap
    # .`), where the path that `env!("CARGO_BIN_EXE_hyper-cloudrun")` baked into
    # tests/process.rs and tests/support/mod.rs at compile time no longer exists; nextest sets
    # NEXTEST_BIN_EXE_<name> at run time for that case, and the tests would have to read it
    # first.
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
