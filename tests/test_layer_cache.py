"""The layer cache in the user's cache folder: what one push leaves for the next."""

from __future__ import annotations

from pathlib import Path

from gui.pipeline.layer_cache import LayerCache

DIFF_ID = "sha256:" + "1" * 64
DIGEST = "sha256:" + "2" * 64


def test_an_entry_that_cannot_be_replaced_leaves_no_temporary_file(tmp_path: Path) -> None:
    """On Windows an entry another pusher is reading cannot be replaced; the update is
    given up (it only costs a mount hint), and its temporary file must go with it, or
    every push adds one to the cache folder. A folder where the entry should be makes
    the replace fail here too."""
    cache = LayerCache("registry.example:5000", root=tmp_path)
    cache.put(DIFF_ID, DIGEST, 1234, "application/vnd.docker.image.rootfs.diff.tar.gzip", "team/app")
    entry = next(cache.folder.glob("*.json"))
    entry.unlink()
    entry.mkdir()
    (entry / "in-the-way").touch()
    cache.put(DIFF_ID, DIGEST, 1234, "application/vnd.docker.image.rootfs.diff.tar.gzip", "team/other")
    cache.put_image("sha256:" + "3" * 64, DIGEST, 99, "application/vnd.docker.distribution.manifest.v2+json")
    assert sorted(p.name for p in cache.folder.rglob("*") if p.name.startswith(".")) == []
    assert cache.image("sha256:" + "3" * 64) is not None, "the other entries are still written"
