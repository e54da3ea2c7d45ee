# The service binary. On x86_64-linux (`staticMusl`): static musl, no reference to any
# /nix/store path, so it can be copied alone into a scratch image. On every other system: a
# native build of the same source with the same toolchain, so `nix run` serves there too; it is
# linked the platform's usual way and no image is made from it.
# Both carry their dependency list (`cargo auditable`), and their tests run during the build.
{
  lib,
  craneLib,
  cargo-auditable,
  file,
  commonArgs,
  cargoArtifacts,
  staticMusl,
}:
let
  # The package and its only [[bin]] share the name `hyper-cloudrun`.
  exe = commonArgs.pname;
in
craneLib.buildPackage (
  commonArgs
  // {
    inherit cargoArtifacts;

    # `cargo test --release --locked` for the musl target after the build; the static test
    # binaries run natively on the x86_64-linux builder (loopback only, port 0).
    #
    # Only the tests whose verdict cannot depend on how busy the builder is: the unit tests,
    # routes, configuration errors and exit codes, properties, malformed input, the accept
    # queue. A user's `nix build .#image` runs this on whatever machine they have, often while
    # `nix flake check` or other builds share its cores, and a timing test that flakes there
    # would refuse them the image for nothing. The tests that hold wall-clock deadlines (drain
    # under a grace, header and idle timeouts, 1,200 slow clients: drain, lifecycle,
    # slow_clients, and process's header-timeout test) run in checks.nextest, which runs every
    # test file, so CI still fails on them. A new test file joins this list only if it has no
    # such deadline. (`.ci/test` runs the whole suite in release for musl, loaded-machine
    # runs quoted in bench/README.md.)
    doCheck = true;
    cargoTestExtraArgs = "--lib --bins --test routes --test process --test properties --test abuse --test listener -- --skip the_header_read_timeout_is_configurable";

    # `cargo auditable build` instead of crane's default `cargoWithProfile build`
    # (lib/buildPackage.nix `cargoBuildCommand`): cargo-auditable runs cargo with itself as
    # RUSTC_WORKSPACE_WRAPPER, which at the final link asks `cargo metadata` for the dependency
    # tree of this target and features and embeds it, zlib-compressed JSON, in a `.dep-v0`
    # section (cargo-auditable src/cargo_auditable.rs, collect_audit_data.rs, object_file.rs;
    # the same at v0.6.5, nixpkgs' version in the nearest stored copy, and at v0.7.5).
    # `rust-audit-info` (checks.image) and `cargo audit bin` (checks.audit-bin) read it back.
    # The wrapper applies to workspace crates only, so the dependency cache (cargoArtifacts) is
    # reused. Cost: `cargo test` in the check phase compiles the crate once more without the
    # wrapper; the installed binary is still the build phase's (crane copies it out from the
    # build log in postBuild, before the check phase: installFromCargoBuildLogHook.sh).
    #
    # `--release` is written out because `cargoWithProfile auditable build` would insert the
    # profile after the first word, `cargo auditable --release build`
    # (lib/setupHooks/cargoHelperFunctionsHook.sh). So this build ignores CARGO_PROFILE, which
    # everything else crane runs honours (buildDepsOnly, the check phase's `cargoWithProfile
    # test`, clippy, nextest; crane defaults it to "release", configureCargoCommonVarsHook.sh):
    # setting CARGO_PROFILE to another profile would build the binary in release but test,
    # lint and cache dependencies in that profile. Change both together, or not at all.
    cargoBuildCommand = "cargo auditable build --release";
    nativeBuildInputs = [ cargo-auditable ];

    meta = {
      description =
        if staticMusl then
          "hyper 1 service for Cloud Run, static x86_64-unknown-linux-musl binary"
        else
          "hyper 1 service for Cloud Run, native build for nix run";
      # `nix run` runs bin/${exe}: the service on 0.0.0.0:$PORT, 8080 by default.
      mainProgram = exe;
    }
    // lib.optionalAttrs staticMusl { platforms = [ "x86_64-linux" ]; };
  }
  # Only for the binary the image ships.
  // lib.optionalAttrs staticMusl {
    # No store path may appear in the output, not even its own. crane already rewrites the
    # toolchain and vendored-source hashes that panic locations embed to /nix/store/eeee…,
    # which is no reference (lib/setupHooks/removeReferencesToRustToolchainHook.sh and
    # removeReferencesToVendoredSourcesHook.sh, added by lib/buildPackage.nix); anything else
    # that slips in (an rpath, a loader path, a data file) fails the build here instead of
    # silently adding store layers to the image. A native build links its platform's C
    # library (on Linux, glibc from the store), so it cannot promise this.
    allowedReferences = [ ];

    # Static linking, asserted on the installed file: no program interpreter, no shared libs.
    doInstallCheck = true;
    nativeInstallCheckInputs = [ file ];
    installCheckPhase = ''
      runHook preInstallCheck
      info=$(file --brief "$out/bin/${exe}")
      echo "$out/bin/${exe}: $info"
      case "$info" in
        *"dynamically linked"* | *interpreter*)
          echo "error: $out/bin/${exe} is not statically linked" >&2
          exit 1
          ;;
        *"statically linked"* | *"static-pie linked"*) ;;
        *)
          echo "error: cannot tell how $out/bin/${exe} is linked" >&2
          exit 1
          ;;
      esac
      runHook postInstallCheck
    '';
  }
)
