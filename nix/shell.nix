# `nix develop` on x86_64/aarch64 Linux and Darwin: the pinned toolchain with editor support,
# and the tools to test, format, inspect, push, deploy and load-test the service.
#
# Nothing here is Linux-only, and no check is pulled in (`checks = …` would drag the image and
# the NixOS test into Darwin shells). Inside the shell cargo builds for the host, not musl: fast
# local iteration; `nix build` is the release path.
{
  devCraneLib,
  cargo-nextest,
  curl,
  deadnix,
  dive,
  google-cloud-sdk,
  jq,
  nixfmt,
  oha,
  skopeo,
}:
# crane's devShell adds the scope's rustc, cargo, clippy and rustfmt: here the dev toolchain
# (build toolchain + rust-src + rust-analyzer, see toolchain.nix).
devCraneLib.devShell {
  packages = [
    cargo-nextest
    # .ci/nix-checks
    nixfmt
    deadnix
    # images: inspect layers, copy to a registry, deploy
    dive
    skopeo
    google-cloud-sdk
    # poke and load-test a running instance
    curl
    jq
    oha
  ];
}
