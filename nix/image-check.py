#!/usr/bin/env python3
"""The image description (nix/image.json) read outside Nix, and the static checks of an image.

One implementation for every caller: nix/image-check.nix runs it inside the build sandbox
(checks.image, checks.image-tls), tests/image.sh on any image tarball (the stand-in that
.ci/musl-image assembles, or `nix build .#image`'s result), and .ci/musl-image imports
`expected_image` and `facts_from_checkout` to assemble the stand-in from the same description.

    image-check.py [--description FILE] [--variant NAME] FACTS [--binary FILE]
                   [--ca-bundle FILE] [--rootfs DIR] TARBALL

FACTS, what the description leaves to the build: `--checkout DIR` reads them as flake.nix
computes them (the crate's name and version from Cargo.toml, `repository` or the placeholder,
the git revision or "dirty"), or `--name N --version V --source S --revision R` gives them.

The description (nix/image.nix reads the same file with lib.importJSON):
  created, architecture   the config's date and architecture
  config                  Docker image config fields, verbatim; the build adds the labels
                          org.opencontainers.image.{title,version,source,revision}
  files                   the layer's entries besides its root: `path` (a directory ends in
                          "/"), `mode` (octal), and for a regular file `from`: "binary" (the
                          service's static binary) or "caBundle" (the CA bundle)
  name, tagSuffix         optional: the image name (default: the crate's) and a tag suffix
  runtime                 optional: where the image runs, for the Nix package's description only
  variants.NAME           tagSuffix, config (merged over the base config), files (added)
The tag is the crate version plus the suffixes.
"""

import argparse
import datetime
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

# Every entry of the customisation layer, the image's only layer, gets this mtime: dockerTools
# tars it with `--mtime "@$SOURCE_DATE_EPOCH"` (pkgs/build-support/docker/default.nix,
# streamLayeredImage's customisationLayer) and stdenv's setup.sh defaults SOURCE_DATE_EPOCH to
# 315532800 (1980-01-01).
SOURCE_DATE_EPOCH = 315532800
# The layer's root directory: symlinkJoin's `mkdir -p $out` under the builder's umask 022.
ROOT_MODE = 0o755
# flake.nix's `source` when Cargo.toml has no `repository`.
PLACEHOLDER_SOURCE = "https://github.com/OWNER/hyper-cloudrun"
# Names that would give an attacker, or a `docker exec`, a shell in the container.
SHELLS = {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox", "toybox"}
STORE_DIR = "/nix/store"
DEFAULT_DESCRIPTION = Path(__file__).resolve().with_name("image.json")


# --- the description --------------------------------------------------------------------------


def facts_from_checkout(root):
    """The values flake.nix computes for the image: the crate's name and version, `source`
    (Cargo.toml's `repository` or the placeholder) and `revision` (`self.rev or "dirty"`: the
    commit when no tracked file differs from it)."""
    root = Path(root)
    package = tomllib.loads((root / "Cargo.toml").read_text())["package"]
    revision = "dirty"
    git = ["git", "-C", str(root)]
    try:
        if subprocess.run(git + ["diff", "--quiet", "HEAD", "--"], capture_output=True).returncode == 0:
            revision = subprocess.run(
                git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
    except OSError:
        pass  # no git: like a flake that is not a git checkout, which has no self.rev
    return {
        "name": package["name"],
        "version": package["version"],
        "license": package.get("license"),
        "source": package.get("repository", PLACEHOLDER_SOURCE),
        "revision": revision,
    }


def sorted_json(value):
    """Objects with their keys sorted, as Nix's builtins.toJSON writes them."""
    if isinstance(value, dict):
        return {k: sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_json(v) for v in value]
    return value


def expected_image(description, variant, facts):
    """What an image built from DESCRIPTION (a dict) and VARIANT (a name or None) must be:
    name, tag, created, architecture, config, and the layer's entries in tar order."""
    extra = {}
    if variant is not None:
        if variant not in description.get("variants", {}):
            raise SystemExit(f"image-check: the description has no variant {variant!r}")
        extra = description["variants"][variant]
    name = description.get("name", facts["name"])
    tag = facts["version"] + description.get("tagSuffix", "") + extra.get("tagSuffix", "")
    config = {**description["config"], **extra.get("config", {})}
    config["Labels"] = {
        **config.get("Labels", {}),
        "org.opencontainers.image.title": facts["name"],
        "org.opencontainers.image.version": facts["version"],
        "org.opencontainers.image.source": facts["source"],
        "org.opencontainers.image.revision": facts["revision"],
    }
    # GNU tar's `--sort name` order: each directory's entries by name, a directory before its
    # contents; that is, by the tuple of path components.
    files = [{"path": "", "mode": f"{ROOT_MODE:04o}"}]
    files += sorted(description["files"] + extra.get("files", []), key=lambda f: f["path"].rstrip("/").split("/"))
    return {
        "name": name,
        "tag": tag,
        "repo_tag": f"{name}:{tag}",
        "created": description["created"],
        "architecture": description["architecture"],
        "config": sorted_json(config),
        "files": files,
    }


# --- the checks -------------------------------------------------------------------------------


class Report:
    """Prints each check as it is made; remembers whether any failed."""

    def __init__(self):
        self.failed = 0

    def check(self, ok, what, why=""):
        if ok:
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}{': ' + why if why else ''}")
        return ok


def read_outer(tarball):
    """The docker-archive's members by name (layers, config, manifest.json)."""
    with tarfile.open(tarball, "r:*") as outer:
        return {m.name: outer.extractfile(m).read() for m in outer.getmembers() if m.isfile()}


def layer_entries(layer):
    """(path, kind, mode, uid, gid, mtime) of each entry, `./` removed, directories with `/`."""
    entries = []
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        for m in tar.getmembers():
            path = m.name.removeprefix("./").removeprefix(".")
            kind = "dir" if m.isdir() else "file" if m.isreg() else f"type {m.type!r}"
            if m.isdir() and path:
                path += "/"
            entries.append((path, kind, m.mode, m.uid, m.gid, m.mtime))
    return entries


def check_manifest(report, members, want):
    manifest = json.loads(members.get("manifest.json", b"null"))
    if not report.check(
        isinstance(manifest, list) and len(manifest) == 1, "one image in manifest.json"
    ):
        return None
    image = manifest[0]
    report.check(
        image.get("RepoTags") == [want["repo_tag"]],
        f"repo tag {want['repo_tag']}",
        f"got {image.get('RepoTags')}",
    )
    if not report.check(len(image.get("Layers", [])) == 1, "exactly one layer", str(image.get("Layers"))):
        return None
    config_bytes = members.get(image.get("Config"))
    layer = members.get(image["Layers"][0])
    if not report.check(config_bytes is not None and layer is not None, "config and layer present"):
        return None
    config_sha = hashlib.sha256(config_bytes).hexdigest()
    layer_sha = hashlib.sha256(layer).hexdigest()
    report.check(image["Config"] == f"{config_sha}.json", "config named by its sha256")
    report.check(image["Layers"][0] == f"{layer_sha}/layer.tar", "layer named by its sha256")
    config = json.loads(config_bytes)
    report.check(
        config.get("rootfs") == {"diff_ids": [f"sha256:{layer_sha}"], "type": "layers"},
        "rootfs.diff_ids is the layer's sha256",
    )
    return config, layer


def check_config(report, config, want):
    got = config.get("config") or {}
    wanted = want["config"]
    entry = got.get("Entrypoint")
    report.check(
        entry == wanted["Entrypoint"],
        f"Entrypoint exec form {wanted['Entrypoint']}",
        "missing: the container would run nothing" if entry is None else f"got {entry!r}",
    )
    report.check("Cmd" not in got, "no Cmd", f"got {got.get('Cmd')!r}")
    user = str(got.get("User", ""))
    ids = user.split(":")
    numeric = len(ids) == 2 and all(i.isdigit() for i in ids)
    report.check(
        numeric and all(int(i) != 0 for i in ids),
        f"User {user} numeric and not root",
        "empty: runs as root" if not user else "root or not uid:gid",
    )
    for key in ("User", "ExposedPorts", "Env", "Labels"):
        report.check(
            got.get(key) == wanted.get(key), f"{key} {json.dumps(wanted.get(key))}", f"got {json.dumps(got.get(key))}"
        )
    report.check(got == wanted, "the config holds nothing else", f"got {json.dumps(got, sort_keys=True)}")
    report.check(
        not [s for s in strings(got) if STORE_DIR in s], f"config names no {STORE_DIR} path"
    )
    report.check(config.get("architecture") == want["architecture"], f"architecture {want['architecture']}")
    report.check(config.get("os") == "linux", "os linux")
    created = datetime.datetime.fromisoformat(want["created"])
    report.check(
        datetime.datetime.fromisoformat(config.get("created", "")) == created,
        f"created {want['created']}",
        f"got {config.get('created')}",
    )
    report.check(len(config.get("history", [])) == 1, "one history entry per layer")


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def check_layer(report, layer, want):
    entries = layer_entries(layer)
    shells = [p for p, *_ in entries if Path(p.rstrip("/")).name in SHELLS]
    report.check(not shells, "no shell", f"found {', '.join(shells)}")
    other = [f"{p} ({k})" for p, k, *_ in entries if k not in ("dir", "file")]
    report.check(not other, "only directories and regular files", ", ".join(other))
    setid = [p for p, _, mode, *_ in entries if mode & 0o6000]
    report.check(not setid, "no setuid or setgid entry", ", ".join(setid))
    owners = {(uid, gid) for *_, uid, gid, _ in entries}
    report.check(owners == {(0, 0)}, "every entry owned by 0:0", str(sorted(owners)))
    mtimes = {mtime for *_, mtime in entries}
    report.check(mtimes == {SOURCE_DATE_EPOCH}, f"every mtime {SOURCE_DATE_EPOCH} (SOURCE_DATE_EPOCH)", str(sorted(mtimes)))
    got = [f"{p or './'} {mode:04o}" for p, _, mode, *_ in entries]
    wanted = [f"{f['path'] or './'} {f['mode']}" for f in want["files"]]
    report.check(got == wanted, f"layer holds exactly: {', '.join(wanted)}", f"got {', '.join(got)}")


def elf_is_static_x86_64(data):
    """(ok, why): a 64-bit x86-64 ELF executable without a PT_INTERP program header."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False, "not a 64-bit ELF file"
    if int.from_bytes(data[18:20], "little") != 62:
        return False, "not x86-64"
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    for i in range(phnum):
        if int.from_bytes(data[phoff + i * phentsize : phoff + i * phentsize + 4], "little") == 3:
            return False, "has an interpreter (PT_INTERP): dynamically linked"
    return True, ""


def check_contents(report, config, layer, want, crate, sources):
    entry = (config.get("config") or {}).get("Entrypoint") or [""]
    binaries = ["/" + f["path"] for f in want["files"] if f.get("from") == "binary"]
    report.check(entry[0] in binaries, f"the Entrypoint runs the binary {', '.join(binaries)}")
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        files = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isreg()}
        for f in want["files"]:
            member = files.get(f["path"])
            if "from" not in f or member is None:
                continue
            data = tar.extractfile(member).read()
            if f["from"] == "binary":
                check_binary(report, f["path"], data, crate)
            if f["from"] == "caBundle":
                check_ca_bundle(report, f["path"], data)
            source = sources.get(f["from"])
            if source is not None:
                report.check(
                    data == Path(source).read_bytes(), f"{f['path']} is {source}", "the bytes differ"
                )


def check_binary(report, path, data, crate):
    ok, why = elf_is_static_x86_64(data)
    report.check(ok, f"{path} is a static x86-64 executable", why)
    # cargo auditable's dependency list: rust-audit-info reads the `.dep-v0` section and exits 1
    # without it (cargo-auditable auditable-extract `raw_auditable_data`).
    if shutil.which("rust-audit-info") is None:
        report.check(False, f"{path} carries its dependency list", "rust-audit-info is not on PATH")
        return
    with tempfile.TemporaryDirectory() as scratch:
        binary = Path(scratch) / "binary"
        binary.write_bytes(data)
        out = subprocess.run(["rust-audit-info", str(binary)], capture_output=True, text=True)
    packages = json.loads(out.stdout).get("packages", []) if out.returncode == 0 else []
    report.check(
        any(p.get("root") and p.get("name") == crate for p in packages)
        and any(p.get("name") == "hyper" for p in packages),
        f"{path} lists its dependencies ({len(packages)} packages, root {crate}, hyper)",
        out.stderr.strip() or "no .dep-v0 section: not built with cargo auditable",
    )


def check_ca_bundle(report, path, data):
    # What rustls-native-certs reads (its pem parsing keeps CERTIFICATE blocks only); OpenSSL's
    # TRUSTED CERTIFICATE blocks would be ignored by it, twice the bytes for nothing.
    text = data.decode("ascii", "replace")
    certs = text.count("-----BEGIN CERTIFICATE-----")
    trusted = text.count("-----BEGIN TRUSTED CERTIFICATE-----")
    report.check(
        certs > 0 and trusted == 0,
        f"{path}: {certs} plain PEM certificates ({len(data)} bytes), no trust-rule blocks",
        f"{trusted} TRUSTED CERTIFICATE blocks",
    )


def check(tarball, want, crate, sources, rootfs=None):
    """Runs every static check on TARBALL against WANT; True when all pass."""
    report = Report()
    members = read_outer(tarball)
    found = check_manifest(report, members, want)
    if found is not None:
        config, layer = found
        check_config(report, config, want)
        check_layer(report, layer, want)
        check_contents(report, config, layer, want, crate, sources)
        if rootfs is not None:
            with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
                if hasattr(tarfile, "fully_trusted_filter"):
                    tar.extractall(rootfs, filter="fully_trusted")
                else:
                    tar.extractall(rootfs)
    print(f"{tarball}: {'all static checks passed' if not report.failed else f'{report.failed} static checks failed'}")
    return report.failed == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tarball")
    parser.add_argument("--description", default=DEFAULT_DESCRIPTION)
    parser.add_argument("--variant")
    parser.add_argument("--checkout", help="read the facts from this checkout")
    for fact in ("name", "version", "source", "revision"):
        parser.add_argument(f"--{fact}")
    parser.add_argument("--binary", help="the binary the image must hold")
    parser.add_argument("--ca-bundle", help="the CA bundle the image must hold")
    parser.add_argument("--rootfs", help="also unpack the layer into this directory")
    args = parser.parse_args()

    if args.checkout:
        facts = facts_from_checkout(args.checkout)
    else:
        facts = {k: getattr(args, k) for k in ("name", "version", "source", "revision")}
        missing = [k for k, v in facts.items() if v is None]
        if missing:
            parser.error("give --checkout DIR or all of --" + ", --".join(missing))
    for fact in ("name", "version", "source", "revision"):
        if getattr(args, fact) is not None:
            facts[fact] = getattr(args, fact)
    description = json.loads(Path(args.description).read_text())
    want = expected_image(description, args.variant, facts)
    sources = {"binary": args.binary, "caBundle": args.ca_bundle}
    sys.exit(0 if check(args.tarball, want, facts["name"], sources, args.rootfs) else 1)


if __name__ == "__main__":
    main()
