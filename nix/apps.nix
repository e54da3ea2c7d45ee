# `nix run .#push`, `nix run .#deploy` and `nix run .#trigger`: ship without a Docker daemon,
# and route Google Cloud events to the service. The scripts are nix/push.sh, nix/deploy.sh and
# nix/trigger.sh; writeShellApplication pins their tools (runtimeInputs), shellchecks them at
# build time and runs them with errexit, nounset and pipefail. tests/apps.sh runs the same
# scripts the same way with stand-ins for gcloud and skopeo.
#
# push exists only where the image is built (x86_64-linux); deploy and trigger need no image
# and are offered on every system (e.g. deploy from a Mac what CI pushed).
{
  lib,
  writeShellApplication,
  coreutils,
  gzip,
  google-cloud-sdk,
  skopeo,
  pname,
  image ? null,
}:
let
  # Where push records IMAGE@DIGEST for deploy; expanded at run time, per user.
  stateFile = ''"''${XDG_STATE_HOME:-$HOME/.local/state}/${pname}/last-push"'';

  app = drv: description: {
    type = "app";
    program = lib.getExe drv;
    meta = { inherit description; };
  };

  deploy = writeShellApplication {
    name = "${pname}-deploy";
    runtimeInputs = [ google-cloud-sdk ];
    text = ''
      state_file=${stateFile}
    ''
    + builtins.readFile ./deploy.sh;
  };

  trigger = writeShellApplication {
    name = "${pname}-trigger";
    # tr and cut (the default trigger id), gcloud. writeShellApplication puts these first on
    # PATH but keeps the caller's PATH after them (`inheritPath ? true`,
    # pkgs/build-support/trivial-builders/default.nix), so a tool missing here would still be
    # found on most machines: tests/apps.sh runs trigger.sh with only these on PATH.
    runtimeInputs = [
      coreutils
      google-cloud-sdk
    ];
    text = builtins.readFile ./trigger.sh;
  };

  push = writeShellApplication {
    name = "${pname}-push";
    runtimeInputs = [
      coreutils
      gzip
      google-cloud-sdk
      skopeo
    ];
    text = ''
      ${lib.toShellVars {
        image = "${image}";
        tag = image.imageTag;
        default_policy = "${skopeo}/etc/containers/default-policy.json";
        # containers/image's built-in system policy path on Linux (builtinDefaultPolicyPath);
        # nixpkgs' skopeo does not move it (no -ldflags for signature.systemDefaultPolicyPath).
        system_policy = "/etc/containers/policy.json";
      }}
      state_file=${stateFile}
    ''
    + builtins.readFile ./push.sh;
  };
in
{
  deploy = app deploy "gcloud run deploy SERVICE by digest, with GOOGLE_CLOUD_PROJECT set";
  trigger = app trigger "Create an Eventarc trigger: Pub/Sub or Cloud Storage events to SERVICE's POST /events";
}
// lib.optionalAttrs (image != null) {
  push = app push "Push the image to Artifact Registry with skopeo; prints IMAGE@DIGEST";
}
