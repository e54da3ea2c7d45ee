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
{
  lib,
  dockerTools,
  package,
  source,
  revision,
}:
let
  exe = package.meta.mainProgram;
in
dockerTools.buildLayeredImage {
  # Loads as hyper-cloudrun:<crate version>. `nix run .#push` chooses the registry path.
  name = package.pname;
  tag = package.version;

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
  '';

  # Cloud Run rejects anything but linux/amd64; say so instead of inheriting the builder's arch.
  architecture = "amd64";
  # `created` and `mtime` keep dockerTools' fixed default (1970-01-01T00:00:01Z): the image
  # digest depends only on the binary and the config below. Never "now".

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
  };

  meta.description = "Binary-only OCI image of ${package.pname} for Cloud Run";
}
