"""What every harness module shares: the cache folder, logging, running a command, and removing
the image tags of older recipes (standard library only)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("LLMOPS_CACHE_DIR", str(Path.home() / ".cache" / "llmops-langfuse")))


def log(msg: str) -> None:
    print(f"==> {msg}", flush=True)


def run(cmd: list, env: dict | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], env=env, check=check, **kw)


def remove_stale_tags(repos: list[str], keep: set[str]) -> None:
    """Remove the tags of these image repositories that no current recipe makes (the disk of a
    test machine is not endless). Other repositories are never touched."""
    for repo in repos:
        listed = subprocess.run(["docker", "image", "ls", repo, "--format", "{{.Repository}}:{{.Tag}}"],
                                stdout=subprocess.PIPE, text=True, check=False).stdout.split()
        stale = [ref for ref in listed if ref not in keep and not ref.endswith(":<none>")]
        if stale:
            log(f"removing outdated images {' '.join(stale)}")
            subprocess.run(["docker", "image", "rm", *stale], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
