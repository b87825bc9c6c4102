"""Reading a built image out of the engine's export (`docker save`), blob by blob.

Engines answer the export in one of two layouts, both read here as a stream
(never a whole image in memory: a few MiB, plus the compressed layers waiting for
their upload up to the push's budget, whatever the image's size):
  - Docker's own, up to Docker 24: manifest.json naming a config file and
    per-layer tar files (`<id>/layer.tar`), uncompressed, so Dockpool compresses
    them (gzip);
  - the OCI layout: index.json -> manifest -> config and layer blobs. Docker 25+
    writes it with uncompressed layers named by their diffID (compressed like the
    classic ones); the containerd image store (Docker Desktop's default) and
    `buildx --output type=oci` with layers compressed already, kept exactly as they
    are, under the media types of the manifest they came with (Docker's or OCI's).
    Both also write a manifest.json for old tools; the index is what is read.

When no layer of the image is known to be in the registry (the layer cache knows
none: a first push, a fresh CI runner), an uncompressed layer is handed over as
soon as its tar header is read and compressed straight from the export into a
spool (memory, then a file: see spool) that the upload reads as it grows (see
push_direct): the upload starts within milliseconds, and nothing but the compressed
bytes beyond the push's memory budget is written to disk. When some
layers are known to be there, a layer is first spooled to a file while its diffID
is computed (`<id>/layer.tar` names do not say which layer it is), and only the
ones the registry still needs are handed over, to be compressed on the uploader's
compressor thread. gzip runs in zlib, which releases the GIL, in blocks compressed
side by side on a few threads (see Compression).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import posixpath
import struct
import tarfile
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .spool import MemoryBudget, Spool

log = logging.getLogger(__name__)

CHUNK = 1 << 20
SMALL = 1 << 20  # members up to this size that are not layers stay in memory (configs, manifests)...
SMALL_TOTAL = 4 << 20  # ...blobs up to this much in all (small compressed layers of an OCI export go to files)
GZIP_LEVEL = 6
COMPRESS_CHUNK = 256 * 1024  # a block: small enough that an upload starts within milliseconds
WINDOW = 32 * 1024  # deflate's window: a block may refer back this far into the one before
# gzip's header as zlib writes it, but with "unknown" for the OS (zlib writes its own
# platform's), so the same zlib gives the same bytes on Windows as on Linux.
GZIP_HEADER = bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255])
LAST_BLOCK = b"\x03\x00"  # an empty final deflate block (fixed Huffman codes, end of block)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_GZIP_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_UNCOMPRESSED_LAYERS = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar")


class ExportError(Exception):
    """The export is not a layout Dockpool can read, or does not match the image."""


@dataclass
class Blob:
    """A blob as it will be uploaded. A layer still to be compressed has no digest or
    size yet (the uploader fills them in) and either `raw` (the uncompressed tar on
    disk, for the uploader to compress) or `compressing` (compressed from the export
    as it arrives); `estimate` is its uncompressed size, for the progress total."""

    digest: str
    size: int
    media_type: str
    body: Spool | None = None  # its bytes, ready to upload
    diff_id: str = ""  # for layers: the digest of the uncompressed tar
    raw: Path | None = None  # the uncompressed tar, for layers compressed while they upload
    compressing: Compression | None = None
    estimate: int = 0


@dataclass
class ExportedImage:
    config: bytes
    config_media_type: str
    manifest_media_type: str
    layers: list[Blob]  # in order; no digest for layers the caller did not want

    @property
    def config_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()


class ChunkStream(io.RawIOBase):
    """A readable file over an iterator of byte chunks (the SDK's export stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _copy(source: IO[bytes], target: IO[bytes]) -> str:
    """Copy while hashing; returns the sha256 digest of the bytes."""
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        target.write(chunk)
    return "sha256:" + digest.hexdigest()


class Compression:
    """gzip of an uncompressed layer into a spool, hashed as it goes: made by `run`
    (from the layer's file, on the uploader's compressor thread) or `run_stream` (from
    the export, on its reading thread); `pieces` reads the spool as it grows. Why
    not in the upload's own thread: an upload that compressed its own body paused the
    socket at every chunk, and a link that waits on its sender loses that time for good
    (2 % of an uplink, measured); the compressor runs well ahead of any uplink, so the
    upload only ever waits for the network.

    The layer is cut into blocks of COMPRESS_CHUNK bytes, deflated side by side on a few
    threads, each primed with the 32 KiB before it (as pigz does), and joined into one
    gzip stream: zlib alone compresses 17 to 28 MB/s here, which a registry on a fast
    link outruns (a 1 GiB layer took 60 s where the engine's push took 45 s). The bytes
    depend only on the layer, the level and the zlib that deflates them (zlib-ng's
    differ), never on the threads or on how the export's reads are cut, so a layer
    compressed again on another run has the same digest."""

    def __init__(self, source: Path, budget: MemoryBudget, level: int = GZIP_LEVEL) -> None:
        self.source = source
        self.output = Spool(source.with_suffix(source.suffix + ".gz"), budget)
        self.level = level
        self.size = 0  # compressed bytes in the spool so far
        self.done = False
        self._digest = hashlib.sha256()
        self.diff_id = ""  # the uncompressed bytes' digest, once done (run_stream only)
        self._error: BaseException | None = None
        self._stopped = False
        self._changed = threading.Condition()
        # Told the digest on the compressing thread, before `done` is published: whoever
        # sees the layer done finds what on_done started (the uploader's HEAD asked ahead).
        self.on_done: Callable[[Compression, str], None] | None = None

    def run(self) -> None:
        """Compress the layer's file; the compressor thread's work. The file is closed
        before the layer counts as compressed: whoever sees it so deletes the file, and
        Windows cannot delete a file that is still open."""
        try:
            with self.source.open("rb") as reader:
                finished, error = self._compress(reader, None)
        except BaseException as exc:  # the file could not be opened
            finished, error = False, exc
        self._end(finished, error)

    def run_stream(self, reader: IO[bytes]) -> None:
        """Compress the layer as the export delivers it, and learn its diffID."""
        self._end(*self._compress(reader, hashlib.sha256()))

    def _compress(self, reader: IO[bytes], raw_digest: Any) -> tuple[bool, BaseException | None]:
        """Read block after block, hand each to the deflate threads, write their output
        in order, and close the spool's file (Windows cannot delete a file that is still
        open); returns whether the layer is whole, or the error. The diffID is set when
        it is."""
        pool, ahead = _deflaters()
        pending: deque[Future[bytes]] = deque()  # blocks in the threads' hands, in order
        crc, length, window = 0, 0, b""
        finished = False
        error: BaseException | None = None
        try:
            try:
                self._write(GZIP_HEADER)
                while not self._stopped and (block := _read_block(reader)):
                    if raw_digest is not None:
                        raw_digest.update(block)
                    crc, length = zlib.crc32(block, crc), length + len(block)
                    pending.append(pool.submit(_deflate, block, window, self.level))
                    window = block[-WINDOW:] if len(block) >= WINDOW else (window + block)[-WINDOW:]
                    while pending and (pending[0].done() or len(pending) > ahead):
                        self._write(pending.popleft().result())
                if not self._stopped:
                    while pending:
                        self._write(pending.popleft().result())
                    self._write(LAST_BLOCK + struct.pack("<II", crc, length & 0xFFFFFFFF))
                    finished = True
            finally:
                for block_future in pending:
                    block_future.cancel()
                self.output.finish()
        except BaseException as exc:  # a full disk, an export cut off: the upload reading the spool raises it
            finished, error = False, exc
        if finished and raw_digest is not None:
            self.diff_id = "sha256:" + raw_digest.hexdigest()
        return finished, error

    def _write(self, out: bytes) -> None:
        if out:
            self._digest.update(out)
            self.output.write(out)
            with self._changed:
                self.size += len(out)
                self._changed.notify_all()

    def _end(self, finished: bool, error: BaseException | None) -> None:
        if finished and self.on_done is not None:
            try:
                self.on_done(self, "sha256:" + self._digest.hexdigest())
            except Exception:  # never keeps the layer from counting as compressed (its reader waits)
                log.exception("after compressing %s", self.source.name)
        with self._changed:
            self.done = finished
            self._error = error or (None if finished else ExportError(f"compressing {self.source.name} was stopped"))
            self._changed.notify_all()

    def stop(self) -> None:
        """End `run` at its next chunk (the push is over, its files are about to go)."""
        self._stopped = True

    def _available(self, have: int) -> tuple[int, bool]:
        """Wait for more than `have` bytes, or the end; the compressor's error is raised."""
        with self._changed:
            self._changed.wait_for(lambda: self.size != have or self.done or self._error is not None)
            if self._error is not None:
                raise self._error
            return self.size, self.done

    def wait(self, timeout: float | None = None) -> bool:
        """Until the layer is compressed (its digest and size final), or `timeout` seconds;
        True when it is. The compressor's error is raised."""
        with self._changed:
            self._changed.wait_for(lambda: self.done or self._error is not None, timeout)
            if self._error is not None:
                raise self._error
            return self.done

    def pieces(self, piece: int = COMPRESS_CHUNK) -> Iterator[bytes]:
        """The compressed bytes from the start, as soon as each is in the spool."""
        read = 0
        with self.output.open() as reader:
            while True:
                available, done = self._available(read)
                while read < available:
                    data = reader.read(min(piece, available - read))
                    if not data:
                        raise ExportError(f"{self.source.name}.gz is shorter than what was compressed into it")
                    read += len(data)
                    yield data
                if done:
                    return

    @property
    def digest(self) -> str:
        assert self.done
        return "sha256:" + self._digest.hexdigest()


def _read_block(reader: IO[bytes]) -> bytes:
    """COMPRESS_CHUNK bytes (fewer only at the end): the blocks, and so the compressed
    bytes, never depend on how the reads happen to be cut."""
    first = reader.read(COMPRESS_CHUNK)
    if not first or len(first) == COMPRESS_CHUNK:
        return first
    block = bytearray(first)
    while len(block) < COMPRESS_CHUNK and (more := reader.read(COMPRESS_CHUNK - len(block))):
        block += more
    return bytes(block)


def _deflate(block: bytes, window: bytes, level: int) -> bytes:
    """One block as raw deflate, primed with the bytes before it and ended on a byte
    boundary (a sync flush), so the blocks join into one stream."""
    if window:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, window)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)


_pool: tuple[ThreadPoolExecutor, int] | None = None
_pool_lock = threading.Lock()


def _deflaters() -> tuple[ThreadPoolExecutor, int]:
    """The process's deflate threads (one per core it may use, at most 4), and how many
    blocks a layer keeps in their hands (one more than threads: with the one being read,
    at most threads + 2 blocks of input per layer, 1.5 MiB at 4 threads, and as much
    output; each thread's zlib state, about 270 KB, is the process's; all of it outside
    the push's memory budget).
    Shared: a push compresses one layer at a time, or two. (Each pusher process has
    its own: with several pushers on few cores the threads outnumber the cores, which
    costs nothing but switches.)"""
    global _pool
    with _pool_lock:
        if _pool is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            threads = max(1, min(4, cores))
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dockpool-deflate"), threads + 1
        return _pool


def _forget_pool() -> None:
    """In a forked child: the parent's threads are not there, so neither is its pool."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class _Reader:
    """One pass over an export; see read_export."""

    def __init__(self, workdir: Path, budget: MemoryBudget, diff_ids: list[str], wanted: Callable[[str], bool],
                 ready: Callable[[Blob], None]) -> None:
        self.workdir = workdir
        self.budget = budget
        self.diff_ids = set(diff_ids)
        self.image_diff_ids = list(diff_ids)  # the engine's image, as inspect lists its layers
        self.wanted = wanted
        # No layer is known to be in the registry: a layer may go before it is known which one it is.
        self.stream_layers = all(wanted(diff_id) for diff_id in diff_ids)
        self.ready = ready
        self.small: dict[str, bytes] = {}
        self._small_blobs = 0  # bytes of blobs in self.small
        self.spooled: dict[str, Path] = {}  # member name -> raw bytes on disk
        self.layers: dict[str, Blob] = {}  # member name -> layer as it will be uploaded
        self.links: dict[str, str] = {}
        self._count = 0

    def _file(self, suffix: str) -> Path:
        self._count += 1
        return self.workdir / f"{self._count:04d}{suffix}"

    def member(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = posixpath.normpath(member.name)
        if member.issym() or member.islnk():
            target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(name), member.linkname)
            self.links[name] = posixpath.normpath(target)
            return
        if not member.isfile():
            return
        source = archive.extractfile(member)
        assert source is not None
        blob_digest = "sha256:" + name.rsplit("/", 1)[-1] if name.startswith("blobs/sha256/") else ""
        if name.endswith("/layer.tar") or blob_digest in self.diff_ids:
            self._layer(name, source, member.size)
        elif member.size <= SMALL and (not blob_digest or self._small_blobs + member.size <= SMALL_TOTAL):
            self.small[name] = source.read()  # index.json and manifest.json always: finish() reads them
            self._small_blobs += member.size if blob_digest else 0
        else:
            path = self._file(".blob")
            with path.open("wb") as target:
                _copy(source, target)
            self.spooled[name] = path

    def _layer(self, name: str, source: IO[bytes], size: int) -> None:
        """An uncompressed layer: handed over at once and compressed as it is read when
        every layer is wanted; otherwise hashed first (its diffID), and handed over
        uncompressed if it is wanted."""
        if self.stream_layers:
            compression = Compression(self._file(".tar"), self.budget)
            blob = self.layers[name] = Blob("", 0, DOCKER_GZIP_LAYER, None, compressing=compression, estimate=size)
            self.ready(blob)
            compression.run_stream(source)
            compression.wait()  # raises what stopped it
            blob.diff_id = compression.diff_id
            return
        raw = self._file(".tar")
        with raw.open("wb") as target:
            diff_id = _copy(source, target)
        if not self.wanted(diff_id):
            raw.unlink()
            self.layers[name] = Blob("", 0, "", None, diff_id)
            return
        blob = self.layers[name] = Blob("", 0, DOCKER_GZIP_LAYER, None, diff_id, raw, estimate=size)
        self.ready(blob)

    def bytes_of(self, name: str) -> bytes:
        name = self.links.get(name, name)
        if name in self.small:
            return self.small[name]
        if name in self.spooled:
            return self.spooled[name].read_bytes()
        raise ExportError(f"the export names {name}, which it does not contain")

    def finish(self) -> ExportedImage:
        """The image, read by its OCI index where the export has one: newer engines write
        a manifest.json beside it for old tools, and the containerd image store's names
        gzip blobs there whose media types only the index's manifest tells. Docker
        25.0.0 to 25.0.2 wrote an index that lists nothing, or a manifest without the
        layers (moby#47210, #47065), beside a sound manifest.json: that one is read then."""
        index_error: ExportError | None = None
        if "index.json" in self.small:
            try:
                return self._oci_layout(*self._index_image())
            except (ExportError, KeyError, TypeError, ValueError) as exc:
                index_error = exc if isinstance(exc, ExportError) else ExportError(
                    f"the export's index.json, or a manifest or config it names, is not as the OCI layout says "
                    f"({exc!r})")
                if "manifest.json" not in self.small:
                    raise index_error from exc
        if "manifest.json" in self.small:
            try:
                return self._docker_layout()
            except ExportError as exc:
                if index_error is None:
                    raise
                raise ExportError(f"{index_error}; read by its manifest.json: {exc}") from index_error
        raise ExportError("the export has neither manifest.json nor index.json")

    def _docker_layout(self) -> ExportedImage:
        entries = json.loads(self.small["manifest.json"])
        if not entries:
            raise ExportError("the export's manifest.json is empty")
        entry = entries[0]
        layers = []
        for path in entry["Layers"]:
            path = posixpath.normpath(path)
            path = self.links.get(path, path)
            if path not in self.layers:
                raise ExportError(f"the export's manifest.json names {path}, which it does not contain")
            layers.append(self.layers[path])
        return ExportedImage(self.bytes_of(posixpath.normpath(entry["Config"])), DOCKER_CONFIG, DOCKER_MANIFEST,
                             layers)

    def _index_image(self) -> tuple[dict[str, Any], bytes, list[str]]:
        """The image manifest the index points at, its config and the config's diffIDs,
        checked: a manifest whose layers its config does not list would be pushed as an
        image nobody can pull."""
        manifest, config, diff_ids = self._pick_manifest(json.loads(self.small["index.json"]))
        listed = len(manifest.get("layers") or [])
        if listed != len(diff_ids):
            raise ExportError(f"the export's image manifest lists {listed} layers, its config {len(diff_ids)}")
        return manifest, config, diff_ids

    def _oci_layout(self, manifest: dict[str, Any], config: bytes, diff_ids: list[str]) -> ExportedImage:
        """The image as its manifest lists it. A gzip layer's diffID is its config's, in
        layer order: the layer cache learns it, and a layer the registry has is not read
        again. Other compressions (zstd) stay out of the cache, which feeds Docker v2
        manifests. Every blob is found before any is handed over, so an export that
        lacks one is read by its manifest.json instead, with nothing uploaded for it."""
        layers = []
        made: dict[str, Blob] = {}  # a blob the manifest lists twice goes once
        kept = False  # a layer goes as the export holds it (compressed already)
        for position, desc in enumerate(manifest.get("layers") or []):
            name = self._member(desc["digest"])
            media_type = desc.get("mediaType", OCI_GZIP_LAYER)
            if name in self.layers:  # named by its diffID: handled as an uncompressed layer
                layers.append(self.layers[name])
                continue
            uncompressed = media_type in _UNCOMPRESSED_LAYERS
            kept = kept or not uncompressed
            if name in made:
                layers.append(made[name])
                continue
            gzip_layer = media_type in (OCI_GZIP_LAYER, DOCKER_GZIP_LAYER)
            diff_id = desc["digest"] if uncompressed else (diff_ids[position] if gzip_layer else "")
            if diff_id and not self.wanted(diff_id):
                layers.append(Blob("", 0, "", None, diff_id))
                continue
            if uncompressed:
                raw = self._materialize(name)
                blob = Blob("", 0, OCI_GZIP_LAYER, None, diff_id, raw, estimate=raw.stat().st_size)
            else:
                blob = Blob(desc["digest"], int(desc["size"]), media_type, Spool.of_file(self._materialize(name)),
                            diff_id)
            made[name] = blob
            layers.append(blob)
        for blob in made.values():
            self.ready(blob)
        if not kept:  # Dockpool compresses every layer: Docker v2, as `docker push` sends from these engines
            return ExportedImage(config, DOCKER_CONFIG, DOCKER_MANIFEST, layers)
        return ExportedImage(config, manifest["config"].get("mediaType", OCI_CONFIG),
                             manifest.get("mediaType", OCI_MANIFEST), layers)

    def _materialize(self, name: str) -> Path:
        """A blob's bytes as a file (small ones were kept in memory)."""
        name = self.links.get(name, name)
        if name in self.spooled:
            return self.spooled[name]
        path = self._file(".blob")
        path.write_bytes(self.bytes_of(name))
        self.spooled[name] = path
        return path

    def _member(self, digest: str) -> str:
        """The export's member holding a blob (a link followed)."""
        name = _blob_name(digest)
        return self.links.get(name, name)

    def _holds(self, digest: str) -> bool:
        name = self._member(digest)
        return name in self.small or name in self.spooled or name in self.layers

    def _pick_manifest(self, index: dict[str, Any]) -> tuple[dict[str, Any], bytes, list[str]]:
        """The image manifest the index points at, its config and the config's diffIDs.
        An index may list several platforms and attestations, and nest indexes: the
        image whose layers are the engine's image's (from its inspect) is the one;
        without such a match (an engine that did not say), the first Linux image whose
        layers the export holds, else the first image it holds."""
        found: list[tuple[bool, dict[str, Any], bytes, list[str]]] = []  # (linux, manifest, config, diffIDs)
        self._images_in(index, found, 0)
        if not found:
            raise ExportError("the export's index.json names no image manifest that the export holds")
        for _, manifest, config, diff_ids in found:
            if diff_ids == self.image_diff_ids:
                return manifest, config, diff_ids
        whole = [image for image in found if all(self._holds(layer["digest"]) for layer in image[1]["layers"])]
        _, manifest, config, diff_ids = next((image for image in whole if image[0]), (whole or found)[0])
        return manifest, config, diff_ids

    def _images_in(self, index: dict[str, Any], found: list[tuple[bool, dict[str, Any], bytes, list[str]]],
                   depth: int) -> None:
        """Add the images an index lists, in its order, to `found`; attestations, and
        manifests or configs the export does not hold (a platform never pulled), are
        passed over; nested indexes are followed a few levels deep."""
        if depth > 3:
            return
        for entry in index.get("manifests") or []:
            if "attestation-manifest" in json.dumps(entry.get("annotations") or {}):
                continue
            try:
                document = json.loads(self.bytes_of(_blob_name(entry["digest"])))
                if document.get("mediaType", entry.get("mediaType")) in (OCI_INDEX, DOCKER_LIST) \
                        or "manifests" in document:
                    self._images_in(document, found, depth + 1)
                    continue
                config = self.bytes_of(_blob_name(document["config"]["digest"]))
                diff_ids = list((json.loads(config).get("rootfs") or {}).get("diff_ids") or [])
                document["layers"] = list(document.get("layers") or [])
                linux = (entry.get("platform") or {}).get("os", "linux") == "linux"
                found.append((linux, document, config, diff_ids))
            except (ExportError, KeyError, TypeError, ValueError, AttributeError):
                continue  # a platform or manifest the export does not hold, or not an image


def _blob_name(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def read_export(stream: IO[bytes], workdir: Path, budget: MemoryBudget, diff_ids: list[str],
                wanted: Callable[[str], bool], ready: Callable[[Blob], None]) -> ExportedImage:
    """Read an export tar stream into blobs under `workdir` (and, for layers compressed
    as they are read, into memory while `budget` allows).

    `diff_ids`: the image's layers (from the engine's inspect), so layers named by
    their diffID are recognised; `wanted(diff_id)`: whether the registry still
    needs that layer (others are not compressed); `ready(blob)`: called with each
    layer as soon as it can be uploaded.
    """
    reader = _Reader(workdir, budget, diff_ids, wanted, ready)
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            reader.member(archive, member)
    return reader.finish()
