# The service binary for x86_64-linux: static musl, tests run during the build, and no
# reference to any /nix/store path, so it can be copied alone into a scratch image.
{
  craneLib,
  file,
  commonArgs,
  cargoArtifacts,
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

    # No store path may appear in the output, not even its own. crane already rewrites the
    # toolchain and vendored-source hashes that panic locations embed (to /nix/store/eeee…,
    # which is no reference); anything else that slips in (an rpath, a loader path, a data
    # file) fails the build here instead of silently adding store layers to the image.
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

    meta = {
      description = "hyper 1 service for Cloud Run, static x86_64-unknown-linux-musl binary";
      mainProgram = exe;
      platforms = [ "x86_64-linux" ];
    };
  }
)
