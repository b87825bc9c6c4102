"""What Dockpool remembers about layers it pushed, per registry, in the user's cache folder.

For each layer (by diffID: the digest of its uncompressed tar) the digest and
size of the compressed blob Dockpool made of it, and repositories of that
registry known to hold it. With that, an unchanged layer is neither
recompressed nor uploaded again: a HEAD (or a cross-repository mount) is
enough. For each image pushed (by the engine's image ID) its config's digest and
size and the manifest's media type: an image whose layers and config the
registry has is not even exported from the engine, and its manifest keeps the
type it had. (The ID is the config's digest only in the classic image store;
in the containerd image store it is the manifest's or the index's.)

One small JSON file per layer, written atomically: pushers in several
processes update it at once without locks, and a lost update only costs a
mount hint. DOCKPOOL_CACHE_DIR moves the whole cache (the tests use it).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

MAX_REPOSITORIES = 8  # mount sources remembered per layer


def cache_root() -> Path:
    """The platform's user cache folder for Dockpool."""
    if os.environ.get("DOCKPOOL_CACHE_DIR"):
        return Path(os.environ["DOCKPOOL_CACHE_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "Dockpool" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "Dockpool"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dockpool"


@dataclass
class CachedLayer:
    digest: str  # of the compressed blob
    size: int
    media_type: str
    repositories: list[str] = field(default_factory=list)


@dataclass
class CachedImage:
    config: str  # the config blob's digest
    config_size: int
    manifest_media_type: str


class LayerCache:
    def __init__(self, registry_host: str, root: Path | None = None) -> None:
        key = hashlib.sha256(registry_host.encode()).hexdigest()[:16]
        self.folder = (root or cache_root()) / "layers" / key

    def _path(self, diff_id: str) -> Path:
        return self.folder / (diff_id.replace(":", "-") + ".json")

    def get(self, diff_id: str) -> CachedLayer | None:
        try:
            data = json.loads(self._path(diff_id).read_text(encoding="utf-8"))
            return CachedLayer(str(data["digest"]), int(data["size"]), str(data["media_type"]),
                               [str(r) for r in data.get("repositories", [])])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: the layer is simply compressed again

    def put(self, diff_id: str, digest: str, size: int, media_type: str, repository: str) -> None:
        known = self.get(diff_id)
        repositories = [repository] + [r for r in (known.repositories if known and known.digest == digest else [])
                                       if r != repository]
        self._write(diff_id, {"digest": digest, "size": size, "media_type": media_type,
                              "repositories": repositories[:MAX_REPOSITORIES]})

    def forget(self, diff_id: str, repository: str) -> None:
        """`repository` is no mount source for this layer (any more): the registry refused."""
        known = self.get(diff_id)
        if known is not None and repository in known.repositories:
            self._write(diff_id, {"digest": known.digest, "size": known.size, "media_type": known.media_type,
                                  "repositories": [r for r in known.repositories if r != repository]})

    def image(self, image_id: str) -> CachedImage | None:
        try:
            data = json.loads(self._image_path(image_id).read_text(encoding="utf-8"))
            return CachedImage(str(data["config"]), int(data["config_size"]), str(data["manifest_media_type"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: the image is exported again

    def put_image(self, image_id: str, config: str, config_size: int, manifest_media_type: str) -> None:
        self._write_file(self._image_path(image_id), {"config": config, "config_size": config_size,
                                                      "manifest_media_type": manifest_media_type})

    def _image_path(self, image_id: str) -> Path:
        return self.folder / "images" / (image_id.replace(":", "-") + ".json")

    def _write(self, diff_id: str, data: dict[str, object]) -> None:
        self._write_file(self._path(diff_id), data)

    @staticmethod
    def _write_file(path: Path, data: dict[str, object]) -> None:
        """Write the entry whole or not at all. On Windows the replace fails while another
        pusher reads the entry: the update is given up, and its temporary file too."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".entry-")
        except OSError:
            return  # a cache that cannot be written only makes the next run slower
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream)
            os.replace(temporary, path)
        except OSError:
            with suppress(OSError):
                Path(temporary).unlink(missing_ok=True)
