#!/usr/bin/env bash
# The dependency list that `cargo auditable` embeds (a .dep-v0 section that Trivy, Grype,
# osv-scanner and `cargo audit bin` read) names every crate of Cargo.lock that is linked into
# the binary, at its locked version.
#
# "Linked in" is what cargo itself builds for the binary: `cargo tree -e normal,no-proc-macro
# --target TARGET` (no dev-dependencies, no build scripts, no proc-macros). The embedded list
# must hold all of those with the same versions, and the root package. It may hold more, and
# those extras are accounted for: proc-macros and their dependencies are recorded with kind
# "build" (they ran at compile time, they are not in the binary); and crates enabled only by a
# dev-dependency's features (`cargo metadata`, which cargo-auditable reads, unifies features
# as if tests were built: rust-lang/cargo#10718, rust-secure-code/cargo-auditable#38) are
# listed although they are not linked: a scanner may then warn about a crate we do not ship,
# never miss one we do. Cargo.lock's other entries (dev-dependencies, other platforms' crates)
# must not appear at all.
#
# Usage: tests/auditable.sh TARGET BINARY [TARGET BINARY …]
# Needs rust-audit-info (.ci/musl-build --install puts it in its tools directory) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "auditable: FAIL: $*" >&2
  exit 1
}
[ $# -ge 2 ] && [ $(($# % 2)) = 0 ] || fail "usage: tests/auditable.sh TARGET BINARY [TARGET BINARY …]"
tools=$(.ci/musl-build --tools-dir)
audit_info=$tools/bin/rust-audit-info
[ -x "$audit_info" ] || fail "no rust-audit-info at $audit_info (run .ci/musl-build --install)"

passed=0
while [ $# -gt 0 ]; do
  target=$1 bin=$2
  shift 2
  [ -x "$bin" ] || fail "no executable at $bin"
  embedded=$("$audit_info" "$bin") || fail "$bin carries no readable dependency list (.dep-v0)"
  linked=$(cargo tree --locked --offline -e normal,no-proc-macro --target "$target" \
    --prefix none --format '{p}' | sed 's/ (\*)$//; s/ (.*)$//' | sort -u)
  dev=$(cargo tree --locked --offline -e normal,dev,no-proc-macro --target "$target" \
    --prefix none --format '{p}' | sed 's/ (\*)$//; s/ (.*)$//' | sort -u)
  python3 - "$target" "$bin" "$embedded" "$linked" "$dev" Cargo.lock <<'EOF' || exit 1
import json, re, sys

target, binary, embedded, linked, dev, lockfile = sys.argv[1:]
pkgs = json.loads(embedded)["packages"]
runtime = {(p["name"], p["version"]) for p in pkgs if p.get("kind", "runtime") == "runtime"}
build = {(p["name"], p["version"]) for p in pkgs if p.get("kind") == "build"}
roots = [p["name"] for p in pkgs if p.get("root")]

def parse(lines):
    out = set()
    for line in lines.splitlines():
        name, _, version = line.strip().partition(" v")
        if name:
            out.add((name, version))
    return out

linked, dev = parse(linked), parse(dev)
with open(lockfile) as f:
    locked = set(re.findall(r'^name = "([^"]+)"\nversion = "([^"]+)"', f.read(), re.M))

problems = []
if roots != ["hyper-cloudrun"]:
    problems.append(f"root package is {roots}, not hyper-cloudrun")
missing = sorted(linked - runtime)
if missing:
    problems.append("linked but not listed: " + ", ".join(f"{n} {v}" for n, v in missing))
unknown = sorted((runtime | build) - locked)
if unknown:
    problems.append("listed but not in Cargo.lock: " + ", ".join(f"{n} {v}" for n, v in unknown))
# Listed as runtime but not linked: only the crates dev-dependency features pull in.
extra = sorted(runtime - linked)
unexplained = [c for c in extra if c not in dev]
if unexplained:
    problems.append("listed but neither linked nor from dev features: " + ", ".join(f"{n} {v}" for n, v in unexplained))
if problems:
    print(f"auditable: FAIL: {binary} ({target}):", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"auditable: {target}: {len(linked)} linked crates, all listed at their Cargo.lock versions "
      f"({len(runtime)} runtime, {len(build)} build-time entries)")
if extra:
    print("auditable:   listed although not linked (dev-dependency features, cargo#10718): "
          + ", ".join(n for n, _ in extra))
print(f"auditable:   of Cargo.lock's {len(locked)} crates, {len(locked - runtime - build)} are not "
      "listed: dev-dependencies and other platforms' crates")
EOF
  passed=$((passed + 1))
done
echo "auditable: $passed passed, 0 failed"
