"""The default Langfuse release is a real, exact release and the default images are upstream's.

The newest tag of langfuse/langfuse was read from the upstream repository (git tags) on
2026-12-01: v4.16.0 (2026-08-21); the v3 line is maintained as v3.225.x. The image names are those
of upstream's docker-compose.yml at that tag (docker.langfuse.com/langfuse/langfuse and
.../langfuse-worker; Docker Hub's langfuse/langfuse carries the same images)."""
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "test"))
from image_refs import exact_release, image_pinned  # noqa: E402

NEWEST_V4 = (4, 16, 0)
NEWEST_V3_MINOR = (3, 225)
DEFAULTS = yaml.safe_load((ROOT / "roles/langfuse/defaults/main.yml").read_text())
PRODUCTION = yaml.safe_load((ROOT / "inventories/production/group_vars/all/main.yml").read_text())


def version(text):
    return tuple(int(p) for p in text.split("-")[0].split("."))


def test_the_default_release_exists_upstream():
    for value in (DEFAULTS["langfuse_version"], PRODUCTION["langfuse_version"]):
        assert exact_release(value), value
        parsed = version(value)
        assert parsed <= NEWEST_V4, f"{value} is newer than the newest upstream tag v4.16.0"
        assert parsed[0] == 4 or parsed[:2] <= NEWEST_V3_MINOR
    assert version(DEFAULTS["langfuse_version"])[0] == DEFAULTS["langfuse_major_version"]


def test_the_default_images_are_upstreams_and_pinned():
    rendered = {k: DEFAULTS[k].replace("{{ langfuse_version }}", DEFAULTS["langfuse_version"])
                for k in ("langfuse_web_image", "langfuse_worker_image")}
    assert rendered["langfuse_web_image"] == f"docker.langfuse.com/langfuse/langfuse:{DEFAULTS['langfuse_version']}"
    assert rendered["langfuse_worker_image"] == (
        f"docker.langfuse.com/langfuse/langfuse-worker:{DEFAULTS['langfuse_version']}")
    for key in ("langfuse_clickhouse_image", "langfuse_minio_image"):
        assert image_pinned(DEFAULTS[key]), f"{key}: {DEFAULTS[key]} floats"
    assert all(image_pinned(v) for v in rendered.values())


def test_no_file_names_a_release_that_does_not_exist():
    """4.56.0 was the default once: no such tag exists upstream."""
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.glob("**/*")
                 if p.is_file() and p.suffix in (".yml", ".md", ".py", ".j2") and ".git" not in p.parts
                 and re.search(r"\b4\.56\.0\b", p.read_text(errors="replace"))
                 and p.name != "test_release_defaults.py" and "changelogs" not in p.parts]
    assert not offenders, offenders
