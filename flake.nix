# Wiring only: inputs, the systems, and per-system calls of ./nix/*.nix. Each file says what
# it builds and what its settings cost.
{
  description = "hyper 1 service for Google Cloud Run: static musl binary in a binary-only OCI image";

  inputs = {
    # crane (below) needs nixpkgs >= 26.05 and Nix >= 2.31.2.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    # crane has no inputs of its own, so there is nothing to `follows`.
    crane.url = "github:ipetkov/crane";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      # One nixpkgs in the lock, not two.
      inputs.nixpkgs.follows = "nixpkgs";
    };
    # Data for `cargo audit`, pinned like code: the audit check reruns when it is bumped.
    advisory-db = {
      url = "github:rustsec/advisory-db";
      flake = false;
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      crane,
      rust-overlay,
      advisory-db,
    }:
    let
      inherit (nixpkgs) lib;

      # The static musl package, the image, the SBOM and the checks that build them exist only
      # here: Cloud Run runs linux/amd64, and the musl build, the image and the VM test need an
      # x86_64-linux builder.
      linux = "x86_64-linux";
      # Everywhere: a native package for `nix run`, the dev shell, formatting and deploy.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];

      cargoToml = lib.importTOML ./Cargo.toml;
      # For the image labels. An image built from a dirty tree says "dirty", not self.dirtyRev,
      # so uncommitted rebuilds stay byte-identical.
      revision = self.rev or "dirty";
      # Set `package.repository` in Cargo.toml to replace the placeholder.
      source = cargoToml.package.repository or "https://github.com/OWNER/hyper-cloudrun";

      perSystem =
        system:
        let
          pkgs = import nixpkgs {
            inherit system;
            overlays = [ rust-overlay.overlays.default ];
            # nixos-26.05 is the last nixpkgs release for x86_64-darwin and warns on every
            # import for it; `true` silences that warning in 26.05 (pkgs/top-level/config.nix
            # `allowDeprecatedx86_64Darwin`, whose later copy notes "`true` does nothing; it
            # silenced the warning in 26.05"). Kept because 26.05 still builds and caches the
            # platform until it goes out of support at the end of 2026. Moving to 26.11 means
            # dropping "x86_64-darwin" from `systems` above, not setting "force".
            config.allowDeprecatedx86_64Darwin = system == "x86_64-darwin";
          };
          # callPackage for files returning a set of outputs: drop the `override` helpers it
          # adds, which `nix flake check` would reject as non-derivation outputs.
          callOutputs =
            file: args:
            builtins.removeAttrs (pkgs.callPackage file args) [
              "override"
              "overrideDerivation"
            ];

          toolchain = pkgs.callPackage ./nix/toolchain.nix { rustToolchainFile = ./rust-toolchain.toml; };
          craneLib = (crane.mkLib pkgs).overrideToolchain toolchain.build;
          devCraneLib = (crane.mkLib pkgs).overrideToolchain toolchain.dev;

          isLinux = system == linux;
          crate = callOutputs ./nix/crate.nix {
            inherit craneLib;
            root = ./.;
            # musl on x86_64-linux; elsewhere the host's own target (a native build).
            cargoTarget = if isLinux then toolchain.target else null;
          };
          package = pkgs.callPackage ./nix/package.nix {
            inherit craneLib;
            inherit (crate) commonArgs cargoArtifacts;
            staticMusl = isLinux;
          };
          image = pkgs.callPackage ./nix/image.nix { inherit package source revision; };
          image-tls = pkgs.callPackage ./nix/image.nix {
            inherit package source revision;
            withCaCertificates = true;
          };
          # `nix/reproducible.sh --canary`'s image, a legacyPackages attribute (see below).
          reproducibility-canary = pkgs.callPackage ./nix/reproducibility-canary.nix { inherit image; };
          # AWS Lambda: the `lambda` feature's binary as a provided.al2023 zip and as an image,
          # their checks and the deploy app (nix/lambda.nix).
          lambda = callOutputs ./nix/lambda.nix {
            inherit
              craneLib
              crate
              source
              revision
              ;
          };
          imageCheck =
            img: withCaCertificates:
            pkgs.callPackage ./nix/image-check.nix {
              inherit
                package
                source
                revision
                withCaCertificates
                ;
              image = img;
            };
        in
        {
          # `nix run` (packages.default, meta.mainProgram) serves on 0.0.0.0:8080 on every system.
          packages = {
            default = package;
          }
          // lib.optionalAttrs isLinux {
            inherit image image-tls;
            # `$(nix build --print-out-paths .#image-stream) | docker load`: a script that
            # streams the same image; the tarball itself never lands in the store.
            image-stream = image.stream;
            sbom = pkgs.callPackage ./nix/sbom.nix {
              inherit package;
              inherit (cargoToml.package) license;
            };
            lambda = lambda.zip;
            image-lambda = lambda.image;
          };

          # legacyPackages: `nix build` and `nix eval` reach it as any output, but `nix flake check`
          # neither builds nor evaluates it (Nix 2.34 src/nix/flake.cc checks only the system
          # names there), and `nix flake show` does not list it among the packages.
          legacyPackages = lib.optionalAttrs isLinux { inherit reproducibility-canary; };

          checks =
            callOutputs ./nix/checks.nix {
              inherit
                craneLib
                advisory-db
                crate
                package
                ;
              root = ./.;
              linuxSuite = isLinux;
            }
            # Evaluating the checks instantiates the canary too (its drvPath, not its build), so an
            # image.nix change that breaks the canary fails `nix flake check` at evaluation, not
            # the workflow's reproducibility step after every build.
            // lib.optionalAttrs isLinux (
              builtins.seq reproducibility-canary.drvPath {
                image = imageCheck image false;
                image-tls = imageCheck image-tls true;
                image-vm = pkgs.callPackage ./nix/vm-test.nix { inherit image; };
                lambda = lambda.check;
                image-lambda = lambda.imageCheck;
              }
            );

          devShells.default = pkgs.callPackage ./nix/shell.nix { inherit devCraneLib; };

          apps =
            callOutputs ./nix/apps.nix {
              inherit (crate.commonArgs) pname;
              image = if isLinux then image else null;
            }
            // lib.optionalAttrs isLinux { deploy-lambda = lambda.app; };

          # `nix fmt`: nixpkgs' nixfmt wrapper for whole trees (treefmt running nixfmt on *.nix).
          formatter = pkgs.nixfmt-tree;
        };

      bySystem = lib.genAttrs systems perSystem;
      collect = output: lib.mapAttrs (_: outputs: outputs.${output}) bySystem;
    in
    {
      packages = collect "packages";
      checks = collect "checks";
      legacyPackages = collect "legacyPackages";
      devShells = collect "devShells";
      apps = collect "apps";
      formatter = collect "formatter";

      templates.default = {
        path = ./.;
        description = "hyper 1 service for Cloud Run: crane musl build, binary-only image, checks, push and deploy apps";
      };
    };
}
