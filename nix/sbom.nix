# packages.x86_64-linux.sbom: a CycloneDX 1.5 JSON of the crates in the binary the image ships,
# made from the dependency list cargo auditable embedded in it (package.nix) with sbom.jq. It
# lists exactly what was linked for the musl target with the enabled features, from the binary
# itself; no network, no vendored sources, and the same binary always gives the same file.
#
#   nix build .#sbom     # result -> hyper-cloudrun-0.1.0.cdx.json
{
  lib,
  runCommand,
  jq,
  rust-audit-info,
  package,
  # Our own component's licence, an SPDX expression: Cargo.toml's `license`.
  license,
}:
runCommand "${package.pname}-${package.version}.cdx.json"
  {
    nativeBuildInputs = [
      jq
      rust-audit-info
    ];
  }
  ''
    # rust-audit-info prints the embedded JSON, or exits 1 if the binary has none.
    rust-audit-info ${lib.getExe package} > audit-data.json
    jq --sort-keys --arg license ${lib.escapeShellArg license} -f ${./sbom.jq} audit-data.json > $out
    jq -e '.components | length > 0' $out > /dev/null
    jq -e --arg license ${lib.escapeShellArg license} \
      '.metadata.component.licenses == [{ expression: $license }]' $out > /dev/null
  ''
