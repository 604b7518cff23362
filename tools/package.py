#!/usr/bin/env python3
"""Builds the krew release artefacts, the way the release workflow does, on this machine.

    tools/package.py                      build the host binary (release), pack it, render the
                                          manifest for it and check both (the krew test)
    tools/package.py pack --target T --binary PATH
                                          pack one built binary for target T (--target may be
                                          repeated to pack the same file for several)
    tools/package.py render [--require-all]
                                          render the manifest for the archives in --dist and
                                          write checksums.txt

Archives are `kubectl-mesh_why-OS-ARCH.tar.gz` (`.zip` for Windows) holding the binary and
LICENSE at their root. The manifest is rendered from `.krew.yaml` the way krew-release-bot does
(`{{ .TagName }}` and `{{addURIAndSha "URL" .TagName }}`), with the sha256 of each archive, into
`DIST/mesh-why.yaml`, the file name krew-index gives it. Only the standard library is used, so
the release runners of every platform can run it.
"""

import argparse
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = "kubectl-mesh_why"
TEMPLATE = ROOT / ".krew.yaml"
PLUGIN = "mesh-why"
ADD_URI_AND_SHA = re.compile(r'^(?P<indent>[ \t]*)\{\{\s*addURIAndSha\s+"(?P<uri>[^"]+)"\s+\.TagName\s*\}\}[ \t]*$', re.M)
TAG_NAME = re.compile(r"\{\{\s*\.TagName\s*\}\}")


def fail(message):
    sys.exit(f"tools/package.py: {message}")


def cargo_version():
    text = (ROOT / "Cargo.toml").read_text()
    found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
    if not found:
        fail("no version in Cargo.toml")
    return found.group(1)


def host_target():
    out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("host: "))


def platform(target):
    """krew's os and arch for a Rust target triple."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(target.split("-")[0])
    os_name = next((o for key, o in (("linux", "linux"), ("darwin", "darwin"), ("windows", "windows")) if key in target), None)
    if not arch or not os_name:
        fail(f"{target} is not a platform the krew manifest lists")
    return os_name, arch


def archive_name(target):
    """Named by krew platform, not triple: the host's own build (glibc on Linux) stands in for
    the release's static one under the same name, so the manifest is the release's."""
    os_name, arch = platform(target)
    return f"{BIN}-{os_name}-{arch}" + (".zip" if os_name == "windows" else ".tar.gz")


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(target):
    """Builds the release binary for `target` and returns its path."""
    command = ["cargo", "build", "--release", "--locked", "--target", target]
    print("+", " ".join(command), file=sys.stderr)
    subprocess.run(command, cwd=ROOT, check=True)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target_dir / target / "release" / (BIN + (".exe" if "windows" in target else ""))


def pack(target, binary, dist):
    """Packs `binary` and LICENSE into the archive for `target`; returns the archive's path."""
    binary = Path(binary)
    if not binary.is_file():
        fail(f"no binary at {binary}")
    dist.mkdir(parents=True, exist_ok=True)
    archive = dist / archive_name(target)
    bin_name = BIN + (".exe" if "windows" in target else "")
    members = [(bin_name, binary, 0o755), ("LICENSE", ROOT / "LICENSE", 0o644)]
    # Fixed times and owners: the same inputs give the same archive, so its sha256 is stable.
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for name, path, mode in members:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o100000 | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as src, z.open(info, "w") as dst:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        dst.write(block)
    else:
        import gzip

        with open(archive, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name, path, mode in members:
                    info = tarfile.TarInfo(name)
                    info.size = path.stat().st_size
                    info.mode = mode
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mtime = 0
                    with open(path, "rb") as src:
                        tar.addfile(info, src)
    print(f"{archive}  {sha256(archive)}", file=sys.stderr)
    return archive


def render(version, dist, require_all):
    """Renders the manifest for the archives in `dist` and writes checksums.txt."""
    if not re.fullmatch(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", version):
        fail(f"`{version}` is not a release tag such as v1.2.3")
    text = TAG_NAME.sub(version, TEMPLATE.read_text())
    head, sep, platforms = text.partition("\n  platforms:\n")
    if not sep:
        fail(".krew.yaml has no spec.platforms")
    blocks = re.split(r"(?m)^(?=  - selector:)", platforms)
    kept = [blocks[0]]
    checksums = {}
    for block in blocks[1:]:
        found = ADD_URI_AND_SHA.search(block)
        if not found:
            fail(f"a platform of .krew.yaml has no addURIAndSha line:\n{block}")
        name = found.group("uri").rsplit("/", 1)[1]
        archive = dist / name
        if not archive.is_file():
            if require_all:
                fail(f"{archive} is missing: every platform of .krew.yaml needs its archive")
            continue
        checksums[name] = sha256(archive)
        indent = found.group("indent")
        rendered = f'{indent}uri: {found.group("uri")}\n{indent}sha256: "{checksums[name]}"'
        kept.append(block[: found.start()] + rendered + block[found.end() :])
    if not checksums:
        fail(f"no archive of .krew.yaml's platforms is in {dist}")
    manifest = dist / f"{PLUGIN}.yaml"
    body = head + sep + "".join(kept)
    # The template's leading comment is for this repository, not for krew-index.
    body = "\n".join(line for line in body.splitlines() if not line.startswith("#")).lstrip("\n") + "\n"
    manifest.write_text(body)
    (dist / "checksums.txt").write_text("".join(f"{sha}  {name}\n" for name, sha in sorted(checksums.items())))
    print(f"wrote {manifest} ({len(checksums)} platform(s)) and {dist / 'checksums.txt'}", file=sys.stderr)
    return manifest


def check(dist):
    """Checks the manifest and the host archive by krew-index's rules and installs it the way
    krew does (the krew test, run on these files)."""
    command = ["cargo", "test", "--locked", "--test", "krew"]
    print("+", " ".join(command), f"(MESH_WHY_KREW_DIST={dist})", file=sys.stderr)
    subprocess.run(command, cwd=ROOT, check=True, env=dict(os.environ, MESH_WHY_KREW_DIST=str(dist)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", nargs="?", choices=["all", "pack", "render"], default="all")
    parser.add_argument("--target", action="append", help="target triple, repeatable (default: the host's)")
    parser.add_argument("--binary", help="an already built binary to pack (default: build it)")
    parser.add_argument("--dist", default=str(ROOT / "target" / "dist"), help="output folder (default: target/dist)")
    parser.add_argument("--version", default=f"v{cargo_version()}", help="release tag (default: v + Cargo.toml's version)")
    parser.add_argument("--require-all", action="store_true", help="render: fail unless every platform's archive is there")
    parser.add_argument("--no-check", action="store_true", help="all: do not run the krew test on the result")
    args = parser.parse_args()
    dist = Path(args.dist).resolve()
    if args.version != f"v{cargo_version()}":
        fail(f"the tag {args.version} does not match Cargo.toml's version {cargo_version()}: the findings' links would point at another release")
    if args.step in ("all", "pack"):
        if args.step == "pack" and not args.binary:
            fail("pack needs --binary")
        for target in args.target or [host_target()]:
            pack(target, args.binary or build(target), dist)
    if args.step in ("all", "render"):
        render(args.version, dist, args.require_all)
    if args.step == "all" and not args.no_check:
        check(dist)


if __name__ == "__main__":
    main()
