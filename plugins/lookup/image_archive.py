# Copyright: llmops.langfuse contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a `docker save` archive on the controller holds: image IDs and tags, from its manifest."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: image_archive
author:
  - llmops.langfuse contributors (@llmops)
version_added: 0.1.0
short_description: Image IDs and tags of C(docker save) archives on the controller
description:
  - Reads the C(manifest.json) of each archive (the classic C(docker save) format and the OCI
    layout that newer engines write) and returns, per archive, the IDs and tags of the images
    in it.
  - Only the tar headers and the small manifest are read, never the layers, so asking costs
    milliseconds even for archives of hundreds of MB. The langfuse role compares the IDs with
    the images a host's engine has, and copies and loads an archive only when one is missing.
options:
  _terms:
    description: Paths of the archives on the controller.
    type: list
    elements: path
    required: true
"""

EXAMPLES = r"""
- name: Show what the archive holds
  ansible.builtin.debug:
    msg: "{{ lookup('llmops.langfuse.image_archive', '/srv/images/langfuse.tar') }}"
"""

RETURN = r"""
_raw:
  description: One entry per archive, in the order given.
  type: list
  elements: dict
  contains:
    path:
      description: The archive.
      type: str
    images:
      description: The images of the archive.
      type: list
      elements: dict
      contains:
        id:
          description: The image ID (C(sha256:) and the digest of its configuration).
          type: str
        tags:
          description: The repository tags stored with it.
          type: list
          elements: str
"""

import json
import os
import tarfile

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase


def read_archive(path):
    """{'path': ..., 'images': [{'id': 'sha256:...', 'tags': [...]}, ...]} of one archive."""
    if not os.path.isfile(path):
        raise AnsibleLookupError("image archive %s does not exist on the controller" % path)
    try:
        with tarfile.open(path, mode="r:") as tar:
            member = next((m for m in tar if m.name in ("manifest.json", "./manifest.json")), None)
            if member is None:
                raise AnsibleLookupError("%s has no manifest.json: not an archive of `docker save`" % path)
            manifest = json.load(tar.extractfile(member))
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise AnsibleLookupError("cannot read the image archive %s: %s" % (path, exc)) from exc
    images = []
    for entry in manifest:
        config = os.path.basename(entry.get("Config", ""))
        digest = config[:-len(".json")] if config.endswith(".json") else config
        if not digest:
            raise AnsibleLookupError("%s: a manifest entry has no Config" % path)
        images.append({"id": "sha256:" + digest, "tags": list(entry.get("RepoTags") or [])})
    return {"path": path, "images": images}


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [read_archive(path) for path in terms]
