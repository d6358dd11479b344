# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container image references: is a reference pinned to one release, or does it float?"""

from __future__ import annotations

import re

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - unit tests run with ansible installed
    class AnsibleFilterError(Exception):
        pass

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# a tag that names one release: three or more numeric parts (4.16.0, 26.4.4.38, v1.2.3),
# optionally with a suffix (-rc.1, -alpine), or MinIO's RELEASE.<UTC timestamp>
_FIXED_TAG = re.compile(
    r"^(v?[0-9]+(\.[0-9]+){2,}([.-][0-9A-Za-z][0-9A-Za-z.-]*)?"
    r"|RELEASE\.[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z)$")
_RELEASE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-rc\.[0-9]+)?$")


def image_tag(ref):
    """The tag of an image reference ('' when it has none). A registry port is no tag."""
    if not isinstance(ref, str) or not ref.strip():
        raise AnsibleFilterError(f"image_pinned: expected an image reference, got {ref!r}")
    name = _DIGEST.sub("", ref.strip())
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def image_pinned(ref):
    """True when the reference names one build: a sha256 digest, or a tag of one release
    (4.16.0, 26.4.4.38, RELEASE.2025-09-07T16-13-09Z). False for no tag, ``latest``, ``4``,
    ``26.4``, ``main`` and any other tag that moves to newer builds."""
    if _DIGEST.search(ref.strip() if isinstance(ref, str) else ""):
        return True
    return bool(_FIXED_TAG.match(image_tag(ref)))


def exact_release(version):
    """True for an exact Langfuse release number: X.Y.Z, optionally -rc.N."""
    return isinstance(version, str) and bool(_RELEASE.match(version))


def has_missing_image(archive_images, engine_images):
    """True when an image of an archive (``[{'id': ..., 'tags': [...]}]``, from the
    llmops.langfuse.image_archive lookup) is not in the engine (``docker_image_info``'s
    ``images``) with that ID and every one of its tags."""
    present = {}
    for image in engine_images or []:
        present.setdefault(image.get("Id"), set()).update(image.get("RepoTags") or [])
    for image in archive_images or []:
        if image["id"] not in present or not set(image.get("tags") or []) <= present[image["id"]]:
            return True
    return False


class TestModule:
    """llmops.langfuse image tests: ``ref is llmops.langfuse.image_pinned``,
    ``version is llmops.langfuse.exact_release``, ``images is llmops.langfuse.has_missing_image(engine)``."""

    def tests(self):
        return {"image_pinned": image_pinned, "exact_release": exact_release, "has_missing_image": has_missing_image}
