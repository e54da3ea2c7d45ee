#!/usr/bin/env bash
# nix/lambda-zip.sh BINARY OUT.zip
#
# The deployment package of a `provided.al2023` Lambda function: one file, `bootstrap`, the
# executable Lambda starts for an OS-only runtime
# (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html>). nix/lambda.nix builds
# `.#lambda` with it and .ci/test the stand-in's, so both are made the same way.
#
# Reproducible: the same binary gives the same bytes. Info-ZIP's `zip -X` leaves out the extra
# fields that hold uid, gid and Unix times (zip(1)); what remains is the name, the mode (0755,
# which Lambda needs to run it) and the DOS date, taken from the file's mtime in local time:
# TZ=UTC0 and a fixed mtime make it 1980-01-01 00:00, ZIP's earliest date and Nix's
# SOURCE_DATE_EPOCH (315532800). One entry, so there is no order to fix.
set -euo pipefail

[ $# -eq 2 ] || {
  echo "usage: nix/lambda-zip.sh BINARY OUT.zip" >&2
  exit 64
}
binary=$1
out=$(realpath -m "$2")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

install -m 0755 "$binary" "$stage/bootstrap"
touch -d @315532800 "$stage/bootstrap"
rm -f "$out"
(cd "$stage" && TZ=UTC0 zip -X -9 -q "$out" bootstrap)
