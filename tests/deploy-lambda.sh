#!/usr/bin/env bash
# `nix run .#deploy-lambda` without Nix and without AWS: nix/deploy-lambda.sh assembled the way
# nix/lambda.nix does it (zip_file, then the script) and run as writeShellApplication runs it
# (errexit, nounset, pipefail, ShellCheck first), with the real AWS CLI talking to moto's server
# mode on 127.0.0.1 (AWS_ENDPOINT_URL), which keeps the functions, URLs and policies it is
# given and answers like Lambda and IAM. Starts from the README's own commands (the role),
# then asserts what the app leaves behind: the function's runtime, handler, architecture and
# code, one public function URL with both permissions, and exit 64 without a call for bad
# arguments. One line per check; any failure exits 1 after all ran.
#
#   tests/deploy-lambda.sh [ZIP]    (default: a zip of a small file made by nix/lambda-zip.sh)
#
# Needs shellcheck, python3, and `aws` and `moto_server` in the virtualenv AWS_VENV (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/hyper-cloudrun/aws-venv; .ci/run installs the AWS CLI and
# moto[server] there, pinned). No credentials or configuration of the user's are read.
# shellcheck disable=SC2016,SC2034 # checks are strings for eval, expanded there
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${AWS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hyper-cloudrun/aws-venv}
for tool in "$venv/bin/aws" "$venv/bin/moto_server" shellcheck python3 zip; do
  command -v "$tool" >/dev/null || {
    echo "deploy-lambda: missing $tool: run .ci/run, or python3 -m venv $venv && $venv/bin/pip install awscli 'moto[server]'" >&2
    exit 1
  }
done

work=$(mktemp -d)
moto=
cleanup() {
  [ -z "$moto" ] || kill "$moto" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=tests/tally.sh
. "$repo/tests/tally.sh"

zip=${1:-}
if [ -z "$zip" ]; then
  printf '#!/bin/sh\necho not a real bootstrap\n' >"$work/fake"
  bash "$repo/nix/lambda-zip.sh" "$work/fake" "$work/fake.zip"
  zip=$work/fake.zip
fi
zip=$(realpath "$zip")

# The app as nix/lambda.nix assembles it.
{
  echo '#!/usr/bin/env bash'
  echo 'set -o errexit -o nounset -o pipefail'
  printf 'zip_file=%q\n' "$zip"
  cat "$repo/nix/deploy-lambda.sh"
} >"$work/deploy-lambda"
chmod +x "$work/deploy-lambda"
if out=$(shellcheck "$work/deploy-lambda" 2>&1); then ok "shellcheck deploy-lambda"; else bad "shellcheck: $out"; fi

# moto on a free port; every AWS call of this script and of the app goes there.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# AWS's managed policies (AWSLambdaBasicExecutionRole) exist in moto only when asked for.
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_CONFIG_FILE=$work/none AWS_SHARED_CREDENTIALS_FILE=$work/none AWS_PAGER=
# IAM is global; the CLI still wants a region to sign with.
export AWS_DEFAULT_REGION=us-east-1
for _ in $(seq 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
export PATH=$venv/bin:$PATH
region=eu-west-1

# app STATUS ARGS…: runs the app; its exit status must be STATUS. Its stdout is in $work/out.
app() {
  local want=$1 status=0
  shift
  "$work/deploy-lambda" "$@" >"$work/out" 2>"$work/err" || status=$?
  [ "$status" = "$want" ] || {
    echo "exit $status (want $want): $(cat "$work/err")"
    return 1
  }
}
json() { # json PYTHON-EXPRESSION: over `d`, the JSON on stdin; must be true
  python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}
lambda_fn() { aws lambda "$@" --region "$region" --output json; }
functions() { lambda_fn list-functions | python3 -c 'import json, sys; print(" ".join(sorted(f["FunctionName"] for f in json.load(sys.stdin)["Functions"])))'; }

# --- bad arguments: exit 64, nothing created ---------------------------------------------------
check "no FUNCTION -> 64" app 64
check "no --region -> 64" app 64 fn
check "--region without a value -> 64" app 64 fn --region
check "--zip-file is the app's -> 64" app 64 fn --region "$region" --zip-file fileb://other.zip
check "--runtime is the app's -> 64" app 64 fn --region "$region" --runtime provided.al2
check "a new function without --role -> 64" app 64 fn --region "$region"
check "nothing was created" test -z "$(functions)"

# --- the README's role, then a function with a URL ---------------------------------------------
role=$(aws iam create-role --role-name hyper-cloudrun-lambda --output text --query Role.Arn \
  --assume-role-policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}')
aws iam attach-role-policy --role-name hyper-cloudrun-lambda \
  --policy-arn arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole

check "create with --role --url -> 0" app 0 fn --region "$region" --role "$role" --url --memory-size 256
url=$(cat "$work/out")
check "prints the function URL, and only it, on stdout" \
  python3 -c 'import re, sys; sys.exit(0 if re.fullmatch(r"https://[a-z0-9]+\.lambda-url\.eu-west-1\.on\.aws/?", sys.argv[1]) else 1)' "$url"
zip_sha=$(python3 -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha256(open(sys.argv[1], "rb").read()).digest()).decode())' "$zip")
config() { lambda_fn get-function-configuration --function-name fn; }
check "provided.al2023, handler bootstrap, x86_64, the role, the zip's code" eval \
  'config | json "d[\"Runtime\"] == \"provided.al2023\" and d[\"Handler\"] == \"bootstrap\" and d[\"Architectures\"] == [\"x86_64\"] and d[\"Role\"] == \"$role\" and d[\"CodeSha256\"] == \"$zip_sha\""'
check "further arguments reach create-function (--memory-size 256)" eval 'config | json "d[\"MemorySize\"] == 256"'
check "the URL is public: auth type NONE" eval \
  'lambda_fn get-function-url-config --function-name fn | json "d[\"AuthType\"] == \"NONE\" and d[\"FunctionUrl\"].rstrip(\"/\") == \"${url%/}\""'
policy() { lambda_fn get-policy --function-name fn | python3 -c 'import json, sys; print(json.load(sys.stdin)["Policy"])'; }
check "the policy lets anyone invoke through the URL: InvokeFunctionUrl (NONE) and InvokeFunction (via the URL)" eval \
  'policy | json "sorted((s[\"Action\"], s.get(\"FunctionUrlAuthType\"), s.get(\"InvokedViaFunctionUrl\"), s[\"Principal\"]) for s in d[\"Statement\"]) == [(\"lambda:InvokeFunction\", None, True, \"*\"), (\"lambda:InvokeFunctionUrl\", \"NONE\", None, \"*\")]"'
check "what it did is on stderr" grep -q "created a public function URL" "$work/err"

# --- again: the code is updated, the URL and the policy stay as they are -----------------------
check "update with --url -> 0, the same URL" eval 'app 0 fn --region "$region" --url && [ "$(cat "$work/out")" = "$url" ]'
check "said it updated the code" grep -q "updating the code of fn" "$work/err"
check "the policy still has its two statements" eval 'policy | json "len(d[\"Statement\"]) == 2"'
check "without --url it prints the function's ARN" eval \
  'app 0 fn --region "$region" && grep -qx "arn:aws:lambda:$region:[0-9]*:function:fn" "$work/out"'

# --- a role Lambda cannot assume yet: create-function is retried -------------------------------
# A stand-in `aws` ahead of the real one fails the first create-function the way Lambda does
# right after the role was created, then hands every call to the real CLI.
mkdir -p "$work/bin"
cat >"$work/bin/aws" <<STANDIN
#!/usr/bin/env bash
if [[ " \$* " == *" create-function "* ]] && [ ! -e "$work/failed-once" ]; then
  touch "$work/failed-once"
  echo "An error occurred (InvalidParameterValueException) when calling the CreateFunction operation: The role defined for the function cannot be assumed by Lambda." >&2
  exit 254
fi
exec "$venv/bin/aws" "\$@"
STANDIN
chmod +x "$work/bin/aws"
check "a role not yet assumable: retried, then created" eval \
  'PATH=$work/bin:$PATH app 0 fn2 --region "$region" --role "$role" && [ -e "$work/failed-once" ] && grep -q "retrying" "$work/err"'
# Lambda says the same of a role that does not exist: 30 s of retries, then its error.
check "a role that does not exist: the error after the retries, exit 1" eval \
  'app 1 fn3 --region "$region" --role arn:aws:iam::123456789012:role/nobody && grep -q "cannot be assumed by Lambda" "$work/err"'
check "functions now: fn fn2" eval '[ "$(functions)" = "fn fn2" ]'

tally deploy-lambda
