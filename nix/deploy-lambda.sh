# nix run .#deploy-lambda -- FUNCTION --region REGION [--role ROLE_ARN] [--url] [aws args…]
#
# Creates the Lambda function FUNCTION from .#lambda's zip (runtime provided.al2023, handler
# bootstrap, x86_64; --role is the execution role it runs as, needed only to create), or, if it
# exists, updates its code; waits until Lambda says it is ready. With --url it also gives it a
# public function URL (auth type NONE) if it has none, and prints the URL; otherwise it prints
# the function's ARN. Further arguments go to the create-function or update-function-code call.
# What it does goes to stderr. Set by nix/lambda.nix: zip_file.

usage() {
  echo "usage: nix run .#deploy-lambda -- FUNCTION --region REGION [--role ROLE_ARN] [--url] [aws lambda create-function/update-function-code args…]" >&2
  exit 64
}

[ $# -ge 1 ] || usage
function=$1
shift
case $function in -* | "") usage ;; esac

region=""
role=""
url=false
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --region | --role)
      if [ $# -lt 2 ] || [ -z "$2" ]; then usage; fi
      if [ "$1" = --region ]; then region=$2; else role=$2; fi
      shift 2
      ;;
    --region=*)
      region=${1#--region=}
      shift
      ;;
    --role=*)
      role=${1#--role=}
      shift
      ;;
    --url)
      url=true
      shift
      ;;
    --zip-file | --zip-file=* | --runtime | --runtime=* | --handler | --handler=*)
      echo "deploy-lambda: $1 is set by this app (the zip of .#lambda, provided.al2023, bootstrap)" >&2
      exit 64
      ;;
    *)
      extra+=("$1")
      shift
      ;;
  esac
done
[ -n "$region" ] || usage

on() { aws lambda "$@" --function-name "$function" --region "$region"; }

if out=$(on get-function --query Configuration.FunctionArn --output text 2>&1); then
  echo "deploy-lambda: updating the code of $function in $region from $zip_file" >&2
  arn=$(on update-function-code --zip-file "fileb://$zip_file" --query FunctionArn --output text ${extra[@]+"${extra[@]}"})
  on wait function-updated-v2
elif grep -q ResourceNotFoundException <<<"$out"; then
  [ -n "$role" ] || {
    echo "deploy-lambda: $function does not exist in $region; creating it needs --role ROLE_ARN, an execution role Lambda may assume (README, AWS Lambda)" >&2
    exit 64
  }
  echo "deploy-lambda: creating $function in $region (provided.al2023, x86_64, role $role) from $zip_file" >&2
  # A role created moments ago is not yet visible to Lambda everywhere (IAM is eventually
  # consistent), and create-function then fails with "The role defined for the function cannot
  # be assumed by Lambda"; deploy tools retry (hashicorp/waypoint#1292). Up to 30 s here.
  for attempt in $(seq 10); do
    if out=$(on create-function --runtime provided.al2023 --handler bootstrap --architectures x86_64 \
      --role "$role" --zip-file "fileb://$zip_file" --query FunctionArn --output text \
      ${extra[@]+"${extra[@]}"} 2>&1); then
      arn=$(grep '^arn:' <<<"$out" | tail -n 1)
      break
    fi
    if [ "$attempt" = 10 ] || ! grep -q "cannot be assumed by Lambda" <<<"$out"; then
      echo "$out" >&2
      exit 1
    fi
    echo "deploy-lambda: Lambda cannot assume $role yet (a new role takes seconds to propagate); retrying in 3 s" >&2
    sleep 3
  done
  on wait function-active-v2
else
  echo "$out" >&2
  exit 1
fi
echo "deploy-lambda: $arn is ready" >&2

if ! $url; then
  echo "$arn"
  exit 0
fi
if function_url=$(on get-function-url-config --query FunctionUrl --output text 2>/dev/null); then
  echo "deploy-lambda: $function already has a function URL" >&2
else
  # A public URL: auth type NONE, and a resource-based policy letting anyone invoke through it.
  # Since October 2025 a new function URL needs both actions allowed, lambda:InvokeFunctionUrl
  # and lambda:InvokeFunction (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html);
  # --invoked-via-function-url limits the second to calls through the URL.
  function_url=$(on create-function-url-config --auth-type NONE --query FunctionUrl --output text)
  on add-permission --statement-id FunctionURLAllowPublicAccess --action lambda:InvokeFunctionUrl \
    --principal '*' --function-url-auth-type NONE >/dev/null
  on add-permission --statement-id FunctionURLInvokeAllowPublicAccess --action lambda:InvokeFunction \
    --principal '*' --invoked-via-function-url >/dev/null
  echo "deploy-lambda: created a public function URL (auth type NONE) for $function" >&2
fi
echo "$function_url"
