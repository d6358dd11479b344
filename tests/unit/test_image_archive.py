"""llmops.langfuse.image_archive (plugins/lookup/image_archive.py): image IDs and tags from the
manifest of `docker save` archives, classic and OCI layout, without reading the layers."""
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest
from ansible.errors import AnsibleLookupError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("image_archive", ROOT / "plugins/lookup/image_archive.py")
image_archive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image_archive)

ID_A, ID_B = "a" * 64, "b" * 64


def archive(path, manifest, layer_size=2 * 2**20):
    with tarfile.open(path, "w") as tar:
        layer = tarfile.TarInfo("0123/layer.tar")
        layer.size = layer_size
        tar.addfile(layer, io.BytesIO(b"\0" * layer_size))
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_classic_docker_save_layout(tmp_path):
    path = archive(tmp_path / "a.tar", [
        {"Config": f"{ID_A}.json", "RepoTags": ["llmops/langfuse-web-standin:4.0.0"], "Layers": []},
        {"Config": f"{ID_B}.json", "RepoTags": ["llmops/langfuse-worker-standin:4.0.0", "x:1.0.0"], "Layers": []}])
    assert image_archive.read_archive(path) == {"path": path, "images": [
        {"id": f"sha256:{ID_A}", "tags": ["llmops/langfuse-web-standin:4.0.0"]},
        {"id": f"sha256:{ID_B}", "tags": ["llmops/langfuse-worker-standin:4.0.0", "x:1.0.0"]}]}


def test_oci_layout_of_newer_engines(tmp_path):
    path = archive(tmp_path / "b.tar", [{"Config": f"blobs/sha256/{ID_A}", "RepoTags": None, "Layers": []}])
    assert image_archive.read_archive(path)["images"] == [{"id": f"sha256:{ID_A}", "tags": []}]


def test_not_an_image_archive(tmp_path):
    path = tmp_path / "c.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(AnsibleLookupError, match="no manifest.json"):
        image_archive.read_archive(str(path))
    with pytest.raises(AnsibleLookupError, match="does not exist"):
        image_archive.read_archive(str(tmp_path / "missing.tar"))
