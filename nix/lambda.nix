# AWS Lambda (docs/lambda.md): the service built with the `lambda` cargo feature, as the
# deployment package of a `provided.al2023` function and as a container image, and the app that
# deploys the package. Only for x86_64-linux, where the static musl binary is built.
#
#   nix build .#lambda        # result -> hyper-cloudrun-lambda.zip, one file: bootstrap
#   nix run .#deploy-lambda -- FUNCTION --region REGION --role ROLE_ARN --url
#   nix build .#image-lambda  # result -> hyper-cloudrun-lambda.tar.gz, for a container-image
#                             # function: push it to ECR, then `aws lambda create-function
#                             # --package-type Image --code ImageUri=…`
#
# The image is image.nix's, binary-only, from its own description ./image-lambda.json: the
# same files and user as ./image.json, named hyper-cloudrun-lambda, no ExposedPorts (Lambda
# sends no traffic to a port). Lambda runs it on a read-only root with a writable /tmp, from an
# absolute Entrypoint that is no symlink, as one architecture
# (https://docs.aws.amazon.com/lambda/latest/dg/images-create.html); checks.image-lambda is
# image-check.nix on it: the static checks against that description, then the entrypoint, which
# without AWS_LAMBDA_RUNTIME_API serves HTTP like the Cloud Run image's.
#
# The package is package.nix's static musl binary with the feature on; its own dependency build,
# because lambda_http's crates (and the features they turn on in shared ones such as `bytes`)
# are not in the default one. Cost: the dependency build and the package build once more, about
# what the default ones take, and only when `.#lambda` or its check is asked for.
{
  lib,
  callPackage,
  runCommand,
  writeShellApplication,
  awscli2,
  coreutils,
  file,
  rust-audit-info,
  unzip,
  zip,
  craneLib,
  crate,
  source,
  revision,
}:
let
  commonArgs = crate.commonArgs // {
    # crane's default is "--locked"; the feature is added to every cargo call, the dependency
    # build's included, so the two agree.
    cargoExtraArgs = "--locked --features lambda";
  };
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
  package = callPackage ./package.nix {
    inherit craneLib commonArgs cargoArtifacts;
    staticMusl = true;
  };

  # The two scripts side by side: the check runs the zip script again.
  scripts = lib.fileset.toSource {
    root = ./.;
    fileset = lib.fileset.unions [
      ./lambda-zip.sh
      ./lambda-zip-check.sh
    ];
  };

  zipFile = runCommand "${package.pname}-lambda.zip" { nativeBuildInputs = [ zip ]; } ''
    bash ${scripts}/lambda-zip.sh ${lib.getExe package} $out
  '';

  deploy = writeShellApplication {
    name = "${package.pname}-deploy-lambda";
    runtimeInputs = [
      awscli2
      coreutils
    ];
    text = ''
      ${lib.toShellVars { zip_file = "${zipFile}"; }}
    ''
    + builtins.readFile ./deploy-lambda.sh;
  };

  imageArgs = {
    inherit package source revision;
    descriptionFile = ./image-lambda.json;
  };
  image = callPackage ./image.nix imageArgs;
in
{
  inherit package image;
  zip = zipFile;
  imageCheck = callPackage ./image-check.nix (imageArgs // { inherit image; });

  # The zip's one entry, its mode and date, its bytes against the package, static linking, the
  # dependency list, and the same bytes from the zip script run again.
  check =
    runCommand "${package.pname}-lambda-check"
      {
        nativeBuildInputs = [
          file
          rust-audit-info
          unzip
          zip
        ];
      }
      ''
        set -o pipefail
        bash ${scripts}/lambda-zip-check.sh ${zipFile} ${lib.getExe package} | tee $out
      '';

  app = {
    type = "app";
    program = lib.getExe deploy;
    meta.description = "Create or update the Lambda function FUNCTION from .#lambda, with a function URL on --url";
  };
}
