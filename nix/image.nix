# Binary-only OCI image for Cloud Run: one layer holding /bin/hyper-cloudrun (the static binary,
# copied, not symlinked into /nix/store) and an empty /tmp. No shell, no libc, no /nix.
#
#   nix build .#image                                   # result -> hyper-cloudrun.tar.gz
#   docker load < result                                # loads hyper-cloudrun:0.1.0
#   $(nix build --print-out-paths .#image-stream) | docker load   # same image, never stored
#   nix run .#push -- LOCATION-docker.pkg.dev/PROJECT/REPO/hyper-cloudrun
#     # = skopeo copy docker-archive:result docker://LOCATION-docker.pkg.dev/PROJECT/REPO/hyper-cloudrun:0.1.0
#
# Pattern: nixpkgs dockerTools example `no-store-paths`. With `contents = [ ]` the only closure
# roots are the config JSON and the customisation layer, both excluded from store layers; the
# layer's tarball holds a binary without store references (package.nix enforces it), so no store
# layer exists at all. checks.image proves the exact file list and config.
#
# withCaCertificates = true (flake output `image-tls`): the same image plus one file, nixpkgs'
# cacert bundle of plain PEM certificates at /etc/ssl/certs/ca-bundle.crt (copied, so still no
# /nix), and SSL_CERT_FILE
# naming it; tagged <version>-tls. Only for services that call out over TLS with the system's
# roots: this service itself makes no outbound connection, so `image` stays binary-only.
{
  lib,
  dockerTools,
  cacert,
  package,
  source,
  revision,
  withCaCertificates ? false,
}:
let
  exe = package.meta.mainProgram;
  # The NixOS path (dockerTools.caCertificates links cacert's ca-bundle.crt there).
  caBundle = "/etc/ssl/certs/ca-bundle.crt";
  # What goes there: cacert installs two bundles (pkgs/by-name/ca/cacert/package.nix, from
  # buildcatrust). ca-bundle.crt (`--ca_bundle_output`) holds every CA twice, as a plain
  # CERTIFICATE block and again as an OpenSSL TRUSTED CERTIFICATE block with its trust bits;
  # ca-no-trust-rules-bundle.crt (`--ca_standard_bundle_output`, "standard PEM compatible
  # bundle") holds only the plain blocks, half the bytes. rustls-native-certs reads only those
  # (0.8.5 src/lib.rs, ENV_CERT_FILE), and OpenSSL trusts every certificate of the file
  # SSL_CERT_FILE names (SSL_CTX_load_verify_locations(3)), so nothing is lost.
  caBundleSource = "${cacert}/etc/ssl/certs/ca-no-trust-rules-bundle.crt";
in
dockerTools.buildLayeredImage {
  # Loads as hyper-cloudrun:<crate version> (-tls). `nix run .#push` chooses the registry path.
  name = package.pname;
  tag = package.version + lib.optionalString withCaCertificates "-tls";

  # Nothing symlinked in: `${package}` appears only in extraCommands, i.e. as a build input of
  # the layer, never as an image file or a closure root.
  contents = [ ];
  # Runs (not as root) in the directory that becomes `/`, hence relative paths. /tmp exists for
  # std::env::temp_dir() callers; the service itself writes nothing (checks.image runs it on a
  # read-only root).
  extraCommands = ''
    mkdir -p bin tmp
    cp ${lib.getExe package} bin/${exe}
    chmod 1777 tmp
  ''
  + lib.optionalString withCaCertificates ''
    mkdir -p etc/ssl/certs
    install -m 0444 ${caBundleSource} .${caBundle}
  '';

  # Cloud Run rejects anything but linux/amd64; say so instead of inheriting the builder's arch.
  architecture = "amd64";
  # Dates, all fixed; never "now". `created` (the config's date) and `mtime` (the outer
  # tarball's members) keep dockerTools' default 1970-01-01T00:00:01Z. The files *in* the
  # layer get $SOURCE_DATE_EPOCH, 1980-01-01 (stdenv setup.sh: 315532800): the customisation
  # layer is tarred with `--mtime "@$SOURCE_DATE_EPOCH"` (docker/default.nix
  # `streamLayeredImage` customisationLayer) and stream_layered_image.py copies that layer.tar
  # unchanged.
  # What the image digest depends on: the binary, the config below, and the nixpkgs revision,
  # because the config's `history` comment names the layer's store path (stream_layered_image.py
  # `main`: "store paths: {layer.paths}"), whose hash covers the layer's build inputs
  # (fakeroot, bash, stdenv, dockerTools). Same flake.lock, same digest; a nixpkgs bump may
  # change the digest with the binary unchanged.

  config = {
    # Exec form, in-image path: the binary is PID 1 and receives Cloud Run's SIGTERM itself
    # (there is no /bin/sh for a shell form). Not "${package}/bin/…": a store path in the
    # config would pull the package into the image as a store layer.
    Entrypoint = [ "/bin/${exe}" ];
    # Documentation only: Cloud Run sends traffic to $PORT (default 8080), the service binds
    # 0.0.0.0:$PORT.
    ExposedPorts = {
      "8080/tcp" = { };
    };
    # nobody:nogroup by number; no /etc/passwd needed because nothing is looked up by name.
    User = "65534:65534";
    Labels = {
      "org.opencontainers.image.title" = package.pname;
      "org.opencontainers.image.version" = package.version;
      "org.opencontainers.image.source" = source;
      # Cost: the label changes the image digest on every commit even when the binary does not.
      # A dirty tree labels "dirty" (not self.dirtyRev) so local rebuilds stay identical.
      "org.opencontainers.image.revision" = revision;
    };
  }
  // lib.optionalAttrs withCaCertificates {
    # Where TLS clients look for roots: OpenSSL (X509_get_default_cert_file_env) and
    # rustls-native-certs (0.8.5 src/lib.rs, ENV_CERT_FILE; it reads only the plain
    # CERTIFICATE blocks) both honour SSL_CERT_FILE.
    Env = [ "SSL_CERT_FILE=${caBundle}" ];
  };

  meta.description =
    "Binary-only OCI image of ${package.pname} for Cloud Run"
    + lib.optionalString withCaCertificates ", with the CA bundle";
}
