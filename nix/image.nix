# Binary-only OCI image for Cloud Run: one layer holding /bin/hyper-cloudrun (the static binary,
# copied, not symlinked into /nix/store) and an empty /tmp. No shell, no libc, no /nix.
#
#   nix build .#image                                   # result -> hyper-cloudrun.tar.gz
#   docker load < result                                # loads hyper-cloudrun:0.1.0
#   $(nix build --print-out-paths .#image-stream) | docker load   # same image, never stored
#   nix run .#push -- LOCATION-docker.pkg.dev/PROJECT/REPO/hyper-cloudrun
#     # = skopeo copy docker-archive:result docker://LOCATION-docker.pkg.dev/PROJECT/REPO/hyper-cloudrun:0.1.0
#
# What the image holds and its config (Entrypoint, User, ExposedPorts, Labels, Env, created,
# every file and its mode) are data, in ./image.json: the same file that nix/image-check.py reads
# for checks.image and tests/image.sh, and that .ci/musl-image assembles the stand-in image from
# outside Nix, so the three cannot drift apart. Computed here, because only the build knows
# them: the tag (the crate version), the labels title, version, source and revision, and the
# store paths the files are copied from. Another image from the same binary is another
# description file (`descriptionFile`), not another copy of this one.
#
# Why the description says what it says:
# - Entrypoint, exec form, in-image path: the binary is PID 1 and receives Cloud Run's SIGTERM
#   itself (there is no /bin/sh for a shell form). Not "${package}/bin/…": a store path in the
#   config would pull the package into the image as a store layer.
# - User 65534:65534, nobody:nogroup by number: no /etc/passwd needed, nothing is looked up by name.
# - ExposedPorts: documentation only; Cloud Run sends traffic to $PORT (default 8080), the
#   service binds 0.0.0.0:$PORT.
# - /tmp (1777) exists for std::env::temp_dir() callers; the service itself writes nothing
#   (checks.image runs it on a read-only root).
# - org.opencontainers.image.licenses is Cargo.toml's `license` (.ci/musl-image fails when the
#   two differ).
#
# Pattern: nixpkgs dockerTools example `no-store-paths`. With `contents = [ ]` the only closure
# roots are the config JSON and the customisation layer, both excluded from store layers; the
# layer's tarball holds a binary without store references (package.nix enforces it), so no store
# layer exists at all.
#
# withCaCertificates = true (flake output `image-tls`): the description's variant "tls", the same
# image plus one file, nixpkgs' cacert bundle at /etc/ssl/certs/ca-bundle.crt (copied, so still
# no /nix), and SSL_CERT_FILE naming it; tagged <version>-tls. Only for services that call out
# over TLS with the system's roots: this service itself makes no outbound connection, so `image`
# stays binary-only.
{
  lib,
  dockerTools,
  cacert,
  package,
  source,
  revision,
  withCaCertificates ? false,
  descriptionFile ? ./image.json,
}:
let
  description = lib.importJSON descriptionFile;
  variant = lib.optionalAttrs withCaCertificates description.variants.tls;
  config = description.config // variant.config or { };
  files = lib.sortOn (f: f.path) (description.files ++ variant.files or [ ]);

  # Where each `from` of the description comes from.
  sources = {
    binary = lib.getExe package;
    # cacert installs two bundles (pkgs/by-name/ca/cacert/package.nix, buildcatrust):
    # ca-bundle.crt holds every CA twice, as a plain CERTIFICATE block and again as an OpenSSL
    # TRUSTED CERTIFICATE block with its trust bits; ca-no-trust-rules-bundle.crt
    # (`--ca_standard_bundle_output`, "standard PEM compatible bundle") holds only the plain
    # blocks, half the bytes. rustls-native-certs reads only those (0.8.5 src/lib.rs,
    # ENV_CERT_FILE), and OpenSSL trusts every certificate of the file SSL_CERT_FILE names
    # (SSL_CTX_load_verify_locations(3)), so nothing is lost.
    caBundle = "${cacert}/etc/ssl/certs/ca-no-trust-rules-bundle.crt";
  };
  # One line per entry, parents first; the modes are the description's. Runs (not as root) in
  # the directory that becomes `/`, hence relative paths; fakeroot then tars everything as 0:0.
  place =
    f:
    let
      path = lib.escapeShellArg f.path;
      mode = lib.escapeShellArg f.mode;
    in
    if lib.hasSuffix "/" f.path then
      "install -d -m ${mode} ${path}"
    else
      "install -m ${mode} ${sources.${f.from}} ${path}";

  exe = "/" + (lib.findFirst (f: f.from or null == "binary") { path = ""; } files).path;
in
# The Entrypoint must run the copied binary; a store path there would pull the package in as a
# store layer, and a name that is not in the layer would run nothing.
assert lib.assertMsg (builtins.head config.Entrypoint == exe)
  "${toString descriptionFile}: Entrypoint ${builtins.head config.Entrypoint} is not the binary ${exe}";
dockerTools.buildLayeredImage {
  # Loads as NAME:<crate version>(-tls). `nix run .#push` chooses the registry path.
  name = description.name or package.pname;
  tag = package.version + (description.tagSuffix or "") + (variant.tagSuffix or "");

  # Nothing symlinked in: `${package}` appears only in extraCommands, i.e. as a build input of
  # the layer, never as an image file or a closure root.
  contents = [ ];
  extraCommands = lib.concatMapStringsSep "\n" place files + "\n";

  # Cloud Run rejects anything but linux/amd64; say so instead of inheriting the builder's arch.
  inherit (description) architecture created;
  # Dates, all fixed; never "now". `created` is the config's date; `mtime` (the outer tarball's
  # members) keeps dockerTools' default 1970-01-01T00:00:01Z. The files *in* the layer get
  # $SOURCE_DATE_EPOCH, 1980-01-01 (stdenv setup.sh: 315532800): the customisation layer is
  # tarred with `--mtime "@$SOURCE_DATE_EPOCH"` (docker/default.nix `streamLayeredImage`
  # customisationLayer) and stream_layered_image.py copies that layer.tar unchanged.
  # What the image digest depends on: the binary, the config below, and the nixpkgs revision,
  # because the config's `history` comment names the layer's store path (stream_layered_image.py
  # `main`: "store paths: {layer.paths}"), whose hash covers the layer's build inputs
  # (fakeroot, bash, stdenv, dockerTools). Same flake.lock, same digest; a nixpkgs bump may
  # change the digest with the binary unchanged.

  config = config // {
    Labels = config.Labels or { } // {
      "org.opencontainers.image.title" = package.pname;
      "org.opencontainers.image.version" = package.version;
      "org.opencontainers.image.source" = source;
      # Cost: the label changes the image digest on every commit even when the binary does not.
      # A dirty tree labels "dirty" (not self.dirtyRev) so local rebuilds stay identical.
      "org.opencontainers.image.revision" = revision;
    };
  };

  meta.description =
    "Binary-only OCI image of ${package.pname} for ${description.runtime or "Cloud Run"}"
    + lib.optionalString withCaCertificates ", with the CA bundle";
}
