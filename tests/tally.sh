# shellcheck shell=bash
# Sourced, not run, by the shell tests that report many checks: `ok NAME` and `bad NAME` count
# one each, `check NAME COMMAND...` counts whether the command exits 0 (its output shown if not),
# and `tally NAME`, last, prints the counts under the test's name and fails if anything failed.

passed=0
failed=0

ok() {
  printf 'ok   %s\n' "$*"
  passed=$((passed + 1))
}

bad() {
  printf 'FAIL %s\n' "$*" >&2
  failed=$((failed + 1))
}

check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name"$'\n'"$out"; fi
}

tally() {
  printf '%s: %s passed, %s failed\n' "$1" "$passed" "$failed"
  [ "$failed" -eq 0 ]
}
