"""Locally built stand-in images for what the tests cannot pull (no registry is reachable here).

The real Langfuse web/worker, ClickHouse and MinIO images live in registries this environment
cannot reach, so tests/standins holds small services that honour the part of their contract the
roles depend on (tests/standins/README.md says which part). They are built on the outer Docker
engine FROM the local ``llmops/debian-systemd:13`` image (tests/harness/images.py), then saved
with ``docker save`` into archives under ``<cache>/standins``: the test hosts run their own
Docker engine, which gets the images only by ``docker load`` of those archives.

Each family of images (langfuse, clickhouse, s3) has a recipe hash covering its files under
tests/standins, its tags and build arguments, and the base image's id. An image is rebuilt only
when its ``org.llmops.recipe`` label differs from that hash, an archive is written only when
``<family>-<hash>.tar`` is missing, and older archives and images are removed. With nothing
changed, ensure_all takes a few seconds; nothing is ever pulled.

``ensure_all`` returns the environment variables the scenarios use (LLMOPS_STANDIN_*).
Run this file directly to build and print them.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from util import CACHE, log, remove_stale_tags, run

STANDINS = Path(__file__).resolve().parents[1] / "standins"
BASE_IMAGE = "llmops/debian-systemd:13"
LABEL = "org.llmops.recipe"
FORMAT = 1  # bump to force a rebuild of every stand-in

LANGFUSE_VERSION = "4.0.0"
LANGFUSE_VERSION_NEXT = "4.0.1"  # same contents, another version: for upgrade tests
# tags of one release (the roles refuse floating tags such as 26.4)
CLICKHOUSE_TAG, CLICKHOUSE_VERSION = "26.4.1.1", "26.4.1.1"
S3_TAG = "1.0.0"

# family -> Dockerfile, hashed sources (relative to tests/standins) and the images it makes
FAMILIES: dict[str, dict] = {
    "langfuse": {
        "dockerfile": "langfuse/Dockerfile",
        "sources": ["common", "langfuse"],
        "images": [
            {"ref": f"llmops/langfuse-{role}-standin:{version}", "args": {"ROLE": role, "VERSION": version}}
            for version in (LANGFUSE_VERSION, LANGFUSE_VERSION_NEXT) for role in ("web", "worker")
        ],
    },
    "clickhouse": {
        "dockerfile": "clickhouse/Dockerfile",
        "sources": ["clickhouse"],
        "images": [{"ref": f"llmops/clickhouse-standin:{CLICKHOUSE_TAG}", "args": {"VERSION": CLICKHOUSE_VERSION}}],
    },
    "s3": {
        "dockerfile": "s3/Dockerfile",
        "sources": ["common", "s3"],
        "images": [{"ref": f"llmops/s3-standin:{S3_TAG}", "args": {"VERSION": S3_TAG}}],
    },
}

Log = Callable[[str], None]
Run = Callable[..., subprocess.CompletedProcess]


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          check=False)


def image_id(ref: str) -> str | None:
    res = _docker("image", "inspect", "--format", "{{.Id}}", ref)
    return res.stdout.strip() if res.returncode == 0 else None


def image_label(ref: str) -> str | None:
    res = _docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', ref)
    return res.stdout.strip() if res.returncode == 0 else None


def _source_files(family: dict) -> list[Path]:
    files = []
    for entry in family["sources"]:
        for path in sorted((STANDINS / entry).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def recipe_hash(name: str, base_id: str) -> str:
    """Hash of what makes a family's images: its files, tags, build arguments and base image."""
    family = FAMILIES[name]
    digest = hashlib.sha256(json.dumps({"format": FORMAT, "family": name, "recipe": family,
                                        "base": base_id}, sort_keys=True).encode())
    for path in _source_files(family):
        digest.update(str(path.relative_to(STANDINS)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
    return digest.hexdigest()[:12]


def archive_path(cache: Path, name: str, digest: str) -> Path:
    return cache / "standins" / f"{name}-{digest}.tar"


def build_family(name: str, digest: str, log: Log, run: Run) -> None:
    """docker build every image of a family (the first builds the layers, the rest reuse them)."""
    family = FAMILIES[name]
    env = dict(os.environ, DOCKER_BUILDKIT="0")  # the classic builder needs no buildx plugin
    with tempfile.NamedTemporaryFile(prefix=f"llmops-standin-{name}-", suffix=".log", delete=False) as out:
        logfile = Path(out.name)
    try:
        for image in family["images"]:
            cmd = ["docker", "build", "--quiet", "-f", str(STANDINS / family["dockerfile"]),
                   "--label", f"{LABEL}={digest}", "-t", image["ref"]]
            for key, value in image["args"].items():
                cmd += ["--build-arg", f"{key}={value}"]
            cmd.append(str(STANDINS))
            with open(logfile, "ab") as fh:
                res = run(cmd, env=env, check=False, stdout=fh, stderr=subprocess.STDOUT)
            if res.returncode != 0:
                raise RuntimeError(f"building {image['ref']} failed:\n"
                                   + logfile.read_text(errors="replace")[-4000:])
    finally:
        logfile.unlink(missing_ok=True)


def save_family(name: str, archive: Path, log: Log, run: Run) -> None:
    """docker save of all the family's tags into one archive (written atomically)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
    refs = [image["ref"] for image in FAMILIES[name]["images"]]
    try:
        run(["docker", "save", "-o", str(tmp), *refs])
        tmp.chmod(0o644)  # docker save writes 0600; the archive is no secret
        os.replace(tmp, archive)
    finally:
        tmp.unlink(missing_ok=True)
    log(f"stand-in archive {archive} ({archive.stat().st_size / 1e6:.0f} MB)")


def ensure_family(name: str, digest: str, cache: Path, log: Log, run: Run) -> Path:
    refs = [image["ref"] for image in FAMILIES[name]["images"]]
    archive = archive_path(cache, name, digest)
    stale = [ref for ref in refs if image_label(ref) != digest]
    if stale and archive.exists():
        log(f"stand-in {name}: loading the images from {archive}")
        run(["docker", "load", "-i", str(archive)], stdout=subprocess.DEVNULL)
        stale = [ref for ref in refs if image_label(ref) != digest]
    if stale:
        old_ids = {image_id(ref) for ref in refs} - {None}
        start = time.monotonic()
        log(f"stand-in {name}: building {' '.join(refs)}")
        build_family(name, digest, log, run)
        log(f"stand-in {name}: built in {time.monotonic() - start:.0f}s")
        _remove_untagged(old_ids - {image_id(ref) for ref in refs}, log)
    else:
        log(f"stand-in {name}: images are current ({digest})")
    if not archive.exists():
        save_family(name, archive, log, run)
    return archive


def _remove_untagged(ids: set, log: Log) -> None:
    """Remove images a rebuild replaced, when nothing else tags them (only our own images)."""
    for old in ids:
        res = _docker("image", "inspect", "--format", "{{len .RepoTags}}", old)
        if res.returncode == 0 and res.stdout.strip() == "0":
            log(f"removing the replaced stand-in image {old[:19]}")
            _docker("image", "rm", old)


def prune(cache: Path, current: dict[str, str], log: Log) -> None:
    """Remove archives of older recipes and tags of our repositories that no recipe makes."""
    folder = cache / "standins"
    keep_archives = {archive_path(cache, name, digest).name for name, digest in current.items()}
    for path in folder.glob("*.tar"):
        if path.name not in keep_archives and path.name.split("-")[0] in FAMILIES:
            log(f"removing the outdated stand-in archive {path}")
            path.unlink(missing_ok=True)
    for path in folder.glob(".*.tmp"):
        if time.time() - path.stat().st_mtime > 3600:  # left by an interrupted save
            path.unlink(missing_ok=True)
    keep_refs = {image["ref"] for family in FAMILIES.values() for image in family["images"]}
    remove_stale_tags(sorted({ref.rsplit(":", 1)[0] for ref in keep_refs}), keep_refs)


def environment(cache: Path, archives: dict[str, Path]) -> dict[str, str]:
    """The LLMOPS_STANDIN_* variables the scenarios read."""
    web = "llmops/langfuse-web-standin"
    worker = "llmops/langfuse-worker-standin"
    return {
        "LLMOPS_STANDIN_ARCHIVES_DIR": str(cache / "standins"),
        "LLMOPS_STANDIN_LANGFUSE_VERSION": LANGFUSE_VERSION,
        "LLMOPS_STANDIN_LANGFUSE_VERSION_NEXT": LANGFUSE_VERSION_NEXT,
        "LLMOPS_STANDIN_WEB_IMAGE": f"{web}:{LANGFUSE_VERSION}",
        "LLMOPS_STANDIN_WEB_IMAGE_NEXT": f"{web}:{LANGFUSE_VERSION_NEXT}",
        "LLMOPS_STANDIN_WORKER_IMAGE": f"{worker}:{LANGFUSE_VERSION}",
        "LLMOPS_STANDIN_WORKER_IMAGE_NEXT": f"{worker}:{LANGFUSE_VERSION_NEXT}",
        "LLMOPS_STANDIN_CLICKHOUSE_IMAGE": FAMILIES["clickhouse"]["images"][0]["ref"],
        "LLMOPS_STANDIN_S3_IMAGE": FAMILIES["s3"]["images"][0]["ref"],
        **{f"LLMOPS_STANDIN_{name.upper()}_ARCHIVE": str(path) for name, path in archives.items()},
    }


def ensure_all(log: Log, run: Run, cache: Path) -> dict[str, str]:
    """Build what changed (families in parallel), save missing archives, prune, return the env."""
    cache = Path(cache)
    base_id = image_id(BASE_IMAGE)
    if base_id is None:
        raise RuntimeError(f"{BASE_IMAGE} is missing: tests/harness/images.py builds it first")
    current = {name: recipe_hash(name, base_id) for name in FAMILIES}
    with ThreadPoolExecutor(max_workers=len(FAMILIES)) as pool:
        futures = {name: pool.submit(ensure_family, name, digest, cache, log, run)
                   for name, digest in current.items()}
        archives = {name: fut.result() for name, fut in futures.items()}
    prune(cache, current, log)
    return environment(cache, archives)


def _main() -> int:
    start = time.monotonic()
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # progress on stderr, the exports on stdout
    try:
        env = ensure_all(log=log, run=run, cache=CACHE)
    finally:
        sys.stdout = real_stdout
    for key, value in env.items():
        print(f"export {key}={value}")
    log(f"stand-ins ready in {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
