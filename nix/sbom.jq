# The dependency list cargo auditable embeds (what `rust-audit-info BINARY` prints:
# auditable-serde VersionInfo, {"packages": [{name, version, source, kind?, dependencies?,
# root?}]}) as a minimal CycloneDX 1.5 BOM, mapped as cargo-auditable's own converter does
# (auditable-cyclonedx v0.7.5 `auditable_to_minimal_cdx`): the root crate is
# metadata.component (type application), every other package a component (type library),
# bom-refs are the indices of the embedded list, and its dependency edges are copied as they
# are. Three differences: a purl only for crates.io packages (upstream appends a qualifier
# without `?` for other sources); no serialNumber or timestamp, so the same binary always
# gives the same file; and the root component carries our licence, $license (Cargo.toml's
# `license`, which the embedded list does not hold), as CycloneDX 1.5's licenseChoice form for
# an SPDX expression: a one-element array `[{"expression": …}]` (bom-1.5.schema.json,
# definitions.licenseChoice; "MIT OR Apache-2.0" is an expression, not a single licence id).
def component($i):
  {
    type: (if .root then "application" else "library" end),
    "bom-ref": ($i | tostring),
    name,
    version
  }
  + (if .source == "crates.io" then { purl: "pkg:cargo/\(.name)@\(.version)" } else {} end)
  + (if .kind == "build" then
      { properties: [{ name: "cdx:rustc:dependency_kind", value: "build" }] }
    else {} end);

[.packages | to_entries[] | { i: .key, p: .value }] as $all
| if ($all | map(select(.p.root)) | length) != 1 then
    error("expected exactly one root package in the audit data")
  else . end
| {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    version: 1,
    metadata: {
      component: (
        ($all[] | select(.p.root) | . as $e | $e.p | component($e.i))
        + { licenses: [{ expression: $license }] }
      )
    },
    components: [$all[] | select(.p.root | not) | . as $e | $e.p | component($e.i)],
    dependencies: [
      $all[] | { ref: (.i | tostring), dependsOn: [(.p.dependencies // [])[] | tostring] }
    ]
  }
