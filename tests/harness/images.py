"""Locally built images for the test hosts (no registry is reachable here).

``llmops/debian-systemd:<release>`` is a Debian root file system made with debootstrap and turned
into an image with ``docker import``; systemd runs as PID 1 in it (molecule/resources/platform.yml
holds the container settings that make that work without --privileged).

Every image is tagged twice: ``<release>-<hash>``, where the hash covers the recipe below, and
the plain ``<release>`` alias the scenarios and the lab use. An image is rebuilt only when the
hashed tag is missing, i.e. when the recipe changed; nothing is ever pulled.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from util import remove_stale_tags

REPO = "llmops/debian-systemd"
MIRROR = "http://deb.debian.org/debian"

# What makes an image. Any change here changes the tag hash and so triggers a rebuild.
RECIPE = {
    "format": 1,
    "releases": {"12": "bookworm", "13": "trixie"},
    # what a Debian cloud image brings that Ansible relies on (python3-apt: the apt module's
    # check mode cannot install it); everything else is the roles' job
    "packages": ["python3", "python3-apt", "systemd", "systemd-sysv", "dbus", "sudo", "iproute2",
                 "ca-certificates"],
    "sources": (
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian\n"
        "Suites: {suite} {suite}-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian-security\n"
        "Suites: {suite}-security\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    ),
    # units that only make sense on real hardware; masked so the container boots "running",
    # not "degraded"
    "masked_units": ["systemd-modules-load.service", "getty.target", "console-getty.service",
                     "systemd-udevd.service", "systemd-udev-trigger.service"],
    "import_changes": [
        'CMD ["/lib/systemd/systemd"]',
        "ENV container=docker",
    ],
}


def recipe_hash(release: str) -> str:
    blob = json.dumps({"recipe": RECIPE, "release": release}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode == 0


def _customise(rootfs: Path, suite: str) -> None:
    apt = rootfs / "etc" / "apt"
    (apt / "sources.list").unlink(missing_ok=True)
    for leftover in (apt / "sources.list.d").glob("*"):
        leftover.unlink()  # e.g. *.disabled-by-farm copies of the build host's sources
    (apt / "sources.list.d" / "debian.sources").write_text(RECIPE["sources"].format(suite=suite))
    # an empty machine-id makes systemd generate a fresh one per container
    (rootfs / "etc" / "machine-id").write_text("")
    (rootfs / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)
    for unit in RECIPE["masked_units"]:
        link = rootfs / "etc" / "systemd" / "system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    (rootfs / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True)
    shutil.rmtree(rootfs / "var" / "lib" / "apt" / "lists", ignore_errors=True)
    (rootfs / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True)


def build(release: str, tag: str, log, run) -> None:
    suite = RECIPE["releases"][release]
    with tempfile.TemporaryDirectory(prefix=f"llmops-rootfs-{release}-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap {suite} for {tag} (about a minute)")
        with open(Path(tmp) / "debootstrap.log", "wb") as out:
            res = subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=" + ",".join(RECIPE["packages"]),
                 suite, str(rootfs), MIRROR], stdout=out, stderr=subprocess.STDOUT, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"debootstrap {suite} failed:\n"
                               + (Path(tmp) / "debootstrap.log").read_text(errors="replace")[-3000:])
        _customise(rootfs, suite)
        changes = [arg for c in RECIPE["import_changes"] for arg in ("-c", c)]
        changes += ["-c", f"LABEL org.llmops.recipe={recipe_hash(release)}"]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
                               stdout=subprocess.PIPE)
        run(["docker", "import", *changes, "-", tag], stdin=tar.stdout, stdout=subprocess.DEVNULL)
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError(f"tar of the {suite} root file system failed")


def ensure_all(log, run) -> None:
    todo = []
    for release in RECIPE["releases"]:
        tag = f"{REPO}:{release}-{recipe_hash(release)}"
        if image_exists(tag):
            log(f"image {tag} is current")
        else:
            todo.append((release, tag))
    if todo:
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            for fut in [pool.submit(build, r, t, log, run) for r, t in todo]:
                fut.result()
    current = set()
    for release in RECIPE["releases"]:
        tag = f"{REPO}:{release}-{recipe_hash(release)}"
        subprocess.run(["docker", "tag", tag, f"{REPO}:{release}"], check=True)
        current.update({tag, f"{REPO}:{release}"})
    remove_stale_tags([REPO], current)
