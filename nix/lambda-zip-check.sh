#!/usr/bin/env bash
# nix/lambda-zip-check.sh ZIP BINARY
#
# What `.#lambda` must be (checks.lambda runs this on it, .ci/test on the stand-in's): exactly
# one entry, `bootstrap`, mode 0755, dated 1980-01-01 00:00, holding BINARY byte for byte,
# static, carrying its dependency list with lambda_http in it; and nix/lambda-zip.sh, run again
# on BINARY, gives the same bytes. One line per check; exits 1 at the first failure.
set -euo pipefail

[ $# -eq 2 ] || {
  echo "usage: nix/lambda-zip-check.sh ZIP BINARY" >&2
  exit 64
}
zip=$1
binary=$2
here=$(dirname "$0")
fail() {
  echo "FAIL $*" >&2
  exit 1
}
ok() { echo "ok   $*"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# zipinfo's short listing of the one entry, e.g.
# -rwxr-xr-x  3.0 unx  1262904 bx defX 80-Jan-01 00:00 bootstrap
listing=$(TZ=UTC0 zipinfo -s "$zip" | sed -n '/bootstrap$/p')
entries=$(zipinfo -1 "$zip")
[ "$entries" = bootstrap ] || fail "entries: want only bootstrap, got: $entries"
ok "one entry: bootstrap"
read -r mode _ system _ _ _ date time name <<<"$listing"
if [ "$mode" != "-rwxr-xr-x" ] || [ "$system" != unx ]; then
  fail "mode: want -rwxr-xr-x (unx), got $mode ($system)"
fi
ok "mode -rwxr-xr-x, Unix attributes"
[ "$date $time" = "80-Jan-01 00:00" ] || fail "date: want 80-Jan-01 00:00, got $date $time"
ok "dated 1980-01-01 00:00"
[ "$name" = bootstrap ] || fail "listing: $listing"

unzip -p "$zip" bootstrap >"$work/bootstrap"
cmp "$work/bootstrap" "$binary" || fail "bootstrap is not the binary"
ok "bootstrap is the binary ($(wc -c <"$binary") bytes)"
info=$(file --brief "$work/bootstrap")
case "$info" in
  *"dynamically linked"* | *interpreter*) fail "bootstrap is dynamically linked: $info" ;;
  *"statically linked"* | *"static-pie linked"*) ok "static: $info" ;;
  *) fail "cannot tell how bootstrap is linked: $info" ;;
esac
if command -v rust-audit-info >/dev/null; then
  rust-audit-info "$work/bootstrap" >"$work/audit.json" || fail "bootstrap has no dependency list (cargo auditable)"
  grep -q '"name":"lambda_http"' "$work/audit.json" || fail "the dependency list does not name lambda_http"
  ok "dependency list names lambda_http"
else
  echo "skip dependency list: rust-audit-info is not installed"
fi

bash "$here/lambda-zip.sh" "$binary" "$work/again.zip"
cmp "$work/again.zip" "$zip" || fail "nix/lambda-zip.sh on the same binary gives other bytes"
ok "reproducible: nix/lambda-zip.sh again gives the same $(wc -c <"$zip") bytes"
