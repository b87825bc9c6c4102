"""Dockpool's own push: the pusher process uploads the image to the registry itself.

Why not the engine's push: the engine keeps a stalled layer upload until its TCP
connection dies and attaches every later push of that image to it, so a stall
cannot be aborted from outside; and it runs up to `max-concurrent-uploads` layer
uploads at once for the whole engine, whatever Dockpool's limit.

Here a push is:
  1. inspect the image (its diffIDs and config digest);
  2. for each layer the layer cache knows: HEAD, else a cross-repository mount;
  3. if anything is still missing: export the image from the engine and compress
     the missing layers, one after another, into spools (memory up to a budget, then
     files; straight from the export when every layer is missing; see image_export
     and spool), and upload each one as soon
     as its first bytes are compressed, one blob at a time (so at most `pushers`
     uploads are on the wire); a layer whose compression finished by the time it
     has its upload slot has a digest already, so the registry is asked first
     (HEAD) and the upload has a length and can resume; the next blob's upload is
     opened (POST) and that HEAD asked while the blob before it is on the wire, so
     neither round trip pauses the link between two blobs (see upload_ahead);
  4. PUT the manifest for every tag; the digest reported is the sha256 of the
     bytes sent, checked against what the registry answers.

A blob upload that makes no progress for the stall timeout fails its socket
write (httpx's write timeout) and Dockpool's own connection is closed; the
upload is resumed at the offset the registry reports, or restarted in a new
upload when the registry cannot resume (the CNCF distribution registry cannot)
or its offset does not add up.
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import httpx
from urllib3.exceptions import ReadTimeoutError

from . import events as ev
from . import scratch
from .failures import classify
from .image_export import (DOCKER_CONFIG, DOCKER_GZIP_LAYER, OCI_CONFIG, OCI_GZIP_LAYER,
                           OCI_MANIFEST, Blob, Compression, ExportedImage, ExportError, read_export)
from .layer_cache import LayerCache
from .reference import api_repository, registry_host, split_name
from .registry_auth import find_credentials
from .registry_http import RegistryClient, RegistryError, Upload, dump_json, failure_for
from .spool import MemoryBudget, Spool
from .streams import exception_message
from .tasks import PushTask, export_timeout
from .upload_ahead import AheadRequests

SEND_CHUNK = 256 * 1024
PROGRESS_INTERVAL = 0.1
MAX_RESUMES = 3  # per blob, inside one push attempt; then the supervisor's retries take over
EXPORT_HEARTBEAT = 30.0  # seconds between "still exporting" lines
EXPORT_JOIN = 10.0  # the longest wait for the export thread to stop once its stream is closed

# A mount refused (no access to the source, no mounts here): the source is forgotten.
MOUNT_REFUSALS = (ev.FailureKind.AUTH, ev.FailureKind.OTHER)
# A mount that failed in any of these ways: the layer is uploaded instead, as Docker does.
MOUNT_FAILURES = MOUNT_REFUSALS + (ev.FailureKind.REGISTRY_ERROR, ev.FailureKind.RATE_LIMITED)


class _Reporter:
    """Progress and log lines for one push, from the upload and export threads alike."""

    def __init__(self, image: str, emit: Callable[[Any], None]) -> None:
        self.image = image
        self._emit = emit
        self._lock = threading.Lock()
        self.done = 0  # bytes of blobs finished (uploaded, found or mounted)
        self.current = 0  # bytes of the blob being uploaded, so far
        self.total = 0
        self.started = False  # PushStarted sent
        self._sent_at = 0.0

    def emit(self, record: Any) -> None:
        with self._lock:
            self._emit(record)

    def log(self, text: str, error: bool = False) -> None:
        self.emit(ev.LogLine(self.image, ev.Stage.PUSH, text, error))

    def add_total(self, size: int) -> None:
        self.total += size

    def progress(self, current: int, force: bool = False) -> None:
        self.current = current
        now = time.monotonic()
        if force or now - self._sent_at >= PROGRESS_INTERVAL:
            self._sent_at = now
            self.emit(ev.PushProgress(self.image, self.done + self.current, max(self.total, self.done + current)))

    def finished_blob(self, size: int) -> None:
        self.done += size
        self.progress(0, force=True)


def _split(ref: str) -> tuple[str, str]:
    """'host:5000/team/api:1.0' -> ('team/api', '1.0'); 'docker.io/api:1' -> ('library/api', '1')."""
    host, rest = split_name(ref)
    repository, _, tag = rest.rpartition(":")
    return api_repository(host, repository), tag


def _worth_another_upload(exc: Exception, failure: ev.Failure) -> bool:
    """A stalled or broken transfer, or an upload session the registry lost or refused:
    the blob goes again (resumed, or in a new upload). Anything else (a refused login, a
    full disk) fails the push and its retry policy decides."""
    return failure.kind in (ev.FailureKind.STALLED, ev.FailureKind.NETWORK) or getattr(exc, "restart_blob", False)


class ExportBroken(Exception):
    """The engine's export stream broke off: the engine stopped or restarted mid-export
    (Docker Desktop restarting, its VM stopped, the daemon killed)."""

    hint = "check that the Docker engine is running (was it restarted or stopped?), then retry this image"


class _EngineStream:
    """The engine's export as read_export reads it, its failures said as the engine's."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self._raw.read(size)
        except ReadTimeoutError:
            raise  # an engine that stopped sending: a network failure, retried
        except Exception as exc:
            raise ExportBroken(f"the engine's export broke off after {self.received / 1e6:.1f} MB "
                               f"({exception_message(exc)})") from exc
        self.received += len(data)
        return data


class _NotExportable(Exception):
    """The engine refuses to export the image: Docker's classic image store, for an image
    without layers (FROM scratch with labels or settings only): "empty export - not
    implemented" (the containerd image store exports it)."""


class DirectPush:
    def __init__(self, clients: Any, task: PushTask, reporter: _Reporter,
                 wire: AbstractContextManager[None]) -> None:
        self.clients = clients
        self.task = task
        self.report = reporter
        self._wire = wire  # the run's limit on the wire: taken at the first upload, held to the end
        self._on_wire = False
        self.host = registry_host(task.refs[0])
        self.repository = _split(task.refs[0])[0]
        self.registry = RegistryClient(self.host, find_credentials(self.host, task.auth), insecure=task.insecure,
                                       timeout=task.stall_timeout)
        self.cache = LayerCache(self.host)
        self.have: dict[str, Blob] = {}  # diffID -> layer the registry has (this repository)
        self.workdir = scratch.make("push")
        self.memory = MemoryBudget(task.memory_budget)  # compressed bytes held until they are uploaded
        # One layer compressed at a time, in the order they upload, ahead of the upload.
        self._compressor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockpool-gzip")
        self._compressions: list[Compression] = []  # every layer's, stopped by close()
        self._export_threads: list[threading.Thread] = []  # joined by close(), before the files go
        # The next blob's upload session and HEAD, made while the blob before it is on the wire.
        self.ahead = AheadRequests(self.registry, self.repository)
        self._streamed: set[Compression] = set()  # layers uploaded as they are compressed: no HEAD
        self._closing = False

    def close(self) -> None:
        """Stop what still runs and remove the temporary files: after the image's outcome
        is sent and its upload slot given back, so the next image's upload never waits
        for this one's clean-up."""
        self._closing = True  # an export thread that outlived the push hands nothing more over
        for compression in list(self._compressions):
            compression.stop()
        self._compressor.shutdown(wait=True, cancel_futures=True)  # before its files go
        for thread in self._export_threads:
            thread.join(EXPORT_JOIN)  # it may be compressing into a file: Windows cannot delete an open file
        try:
            for compression in self._compressions:
                compression.output.discard()  # its memory, at once: the pusher goes on to the next image
            shutil.rmtree(self.workdir, ignore_errors=True)
        finally:
            self.ahead.close()  # and the registry client, after the last request made ahead

    def leave_the_wire(self) -> None:
        """Give the upload slot back: after PushDone or PushFailed has been sent, so the next
        image never counts as pushing before this one has counted as done."""
        if self._on_wire:
            self._on_wire = False
            self._wire.__exit__(None, None, None)

    def _take_the_wire(self) -> None:
        """Wait for an upload slot before the image's first upload, and keep it until the
        image is done: the image finishes while the next one, prepared, waits its turn
        (slots given back between blobs would let images take turns blob by blob, finish
        together, then leave the link idle while all of them prepare)."""
        if not self._on_wire:
            self._wire.__enter__()
            self._on_wire = True
            self._started()

    def _started(self) -> None:
        """The image counts as pushing from its first upload slot (before that it waits for
        one, prepared); an image with nothing to upload, from its manifests."""
        if not self.report.started:
            self.report.started = True
            self.report.emit(ev.PushStarted(self.task.image, self.task.attempt, time.time()))

    def run(self) -> dict[str, str]:
        self.registry.connect()
        self.report.log(f"pushing to {self.registry.base}/v2/{self.repository}")
        image = self.clients.stream.inspect_image(self.task.image_id or self.task.refs[0])
        diff_ids: list[str] = list((image.get("RootFS") or {}).get("Layers") or [])
        for diff_id in dict.fromkeys(diff_ids):
            self._find(diff_id)
        known = self.cache.image(image["Id"]) if all(d in self.have for d in diff_ids) else None
        if known is not None and self.registry.blob_size(self.repository, known.config) == known.config_size:
            self.report.log(f"every layer and the config ({known.config[7:19]}) are in the registry already")
            self.report.add_total(known.config_size)
            self.report.finished_blob(known.config_size)
            media_type = known.manifest_media_type
            manifest = image_manifest(media_type, known.config, known.config_size, [self.have[d] for d in diff_ids])
        else:
            try:
                exported = self._export_and_upload(image["Id"], diff_ids)
            except Exception as exc:
                if not diff_ids and "empty export" in str(exc):
                    raise _NotExportable from exc
                raise
            manifest, media_type = self._upload_config_and_build_manifest(exported)
            self.cache.put_image(image["Id"], exported.config_digest, len(exported.config), media_type)
        return self._put_manifests(manifest, media_type)

    # --- finding what the registry has ---------------------------------------------------

    def _find(self, diff_id: str) -> None:
        """Known from an earlier push: in this repository already, or mountable from another."""
        cached = self.cache.get(diff_id)
        if cached is None:
            return
        blob = Blob(cached.digest, cached.size, cached.media_type, None, diff_id)
        short = cached.digest[7:19]
        if self.registry.blob_size(self.repository, cached.digest) is not None:
            self.report.log(f"{short}: exists")
        else:
            for source in [r for r in cached.repositories if r != self.repository]:
                try:
                    started = self.registry.mount(self.repository, cached.digest, source)
                except RegistryError as exc:
                    if exc.kind not in MOUNT_FAILURES:
                        raise
                    refused = exc.kind in MOUNT_REFUSALS
                    self.report.log(f"{short}: mount from {source} {'refused' if refused else 'failed'} "
                                    f"({exc.failure.message}); uploading it instead")
                    if refused:
                        self.cache.forget(diff_id, source)
                    continue
                if started is None:
                    self.report.log(f"{short}: mounted from {source}")
                    break
                self.registry.cancel_upload(self.repository, started)
            else:
                return
        self.have[diff_id] = blob
        self.report.add_total(blob.size)
        self.report.finished_blob(blob.size)
        self.cache.put(diff_id, blob.digest, blob.size, blob.media_type, self.repository)

    # --- export and upload, overlapped --------------------------------------------------------

    def _export_and_upload(self, image_id: str, diff_ids: list[str]) -> ExportedImage:
        self.report.log(f"exporting {image_id[7:19]} from the engine")
        self.ahead.open_upload()  # while the engine prepares the export
        ready: queue.Queue[Any] = queue.Queue()
        client, response = self._open_export(image_id)

        def handed_over(blob: Blob) -> None:
            """On the export's thread; a layer handed over compressing is compressed by it."""
            if blob.raw is not None and not self._closing:  # compressed from now on, whatever the upload does
                blob.compressing = Compression(blob.raw, self.memory)
                blob.compressing.on_done = compressed
                self._compressor.submit(blob.compressing.run)
            elif blob.compressing is not None:
                blob.compressing.on_done = compressed
            elif blob.digest:  # compressed already (an OCI layout's blob): asked ahead like the others
                self.ahead.ask_blob_size(blob.digest)
            if blob.compressing is not None:
                self._compressions.append(blob.compressing)
                if self._closing:  # the push is over: a layer compressed from the export stops at once
                    blob.compressing.stop()
            ready.put(blob)

        def compressed(compression: Compression, digest: str) -> None:
            """On the compressing thread: a layer compressed before its upload started is
            asked for with a HEAD first (see _upload_layer), asked ahead from here."""
            if compression not in self._streamed:
                self.ahead.ask_blob_size(digest)

        def export() -> None:
            try:
                exported = read_export(_EngineStream(response.raw), self.workdir, self.memory, diff_ids,
                                       wanted=lambda diff_id: diff_id not in self.have, ready=handed_over)
                self.ahead.ask_blob_size(exported.config_digest)
                ready.put(exported)
            except BaseException as exc:  # handed to the uploading thread, which raises it
                ready.put(exc)

        reader = threading.Thread(target=export, name="dockpool-export", daemon=True)
        self._export_threads.append(reader)
        reader.start()
        began = time.monotonic()
        try:
            while True:
                try:
                    item = ready.get(timeout=EXPORT_HEARTBEAT)
                except queue.Empty:
                    # A big layer takes minutes to export and hash before its upload starts:
                    # say so, which also tells the supervisor's stall watch that this pusher
                    # lives. The export's own read timeout ends an engine that stopped sending.
                    self.report.log(f"exporting {image_id[7:19]}: {time.monotonic() - began:.0f} s so far")
                    continue
                if isinstance(item, Blob):
                    self.report.add_total(item.size or item.estimate)
                    if item.compressing is not None:
                        self._upload_layer(item)
                    else:
                        self._upload(item, more_to_come=True)
                    if item.diff_id:
                        self.cache.put(item.diff_id, item.digest, item.size, item.media_type, self.repository)
                elif isinstance(item, ExportedImage):
                    return item
                else:
                    raise item
        finally:
            response.close()  # stops the export if an upload failed first...
            for compression in self._compressions:
                compression.stop()  # ...and a layer it is compressing (all are done after a success)
            reader.join(EXPORT_JOIN)
            client.close()

    def _open_export(self, image_id: str) -> tuple[Any, Any]:
        """The engine's export as a raw HTTP stream (the SDK's get_image, without its
        generator, so the upload thread can close it): with a read timeout, so a hung
        engine ends the push instead of hanging it."""
        from .docker_engine import client_kwargs

        import docker

        client = docker.APIClient(**client_kwargs(), version=self.clients.api_version or "auto",
                                  timeout=export_timeout(self.task.stall_timeout))
        try:
            response = client._get(client._url("/images/{0}/get", image_id), stream=True)
            client._raise_for_status(response)
        except BaseException:
            client.close()
            raise
        response.raw.decode_content = False
        return client, response

    def _upload_layer(self, blob: Blob) -> None:
        """A layer that is being compressed. Compressed by the time it has an upload slot:
        like any blob (HEAD, then an upload that can resume); still compressing: streamed
        as it is compressed. The slot comes first, so a wait for it counts for the first."""
        compression = blob.compressing
        assert compression is not None
        estimate = blob.estimate
        if not compression.done:
            self._take_the_wire()
        if compression.done:  # only ever set for a compression that ended without an error
            self._compressed(blob, compression, estimate)
            self._upload(blob, more_to_come=True)
        else:
            self._streamed.add(compression)
            self._upload_compressing(blob, compression, estimate)

    def _upload_compressing(self, blob: Blob, compression: Compression, estimate: int) -> None:
        """Upload a layer while it is compressed: the first bytes leave as soon as zlib
        has them, and the link never waits for a whole layer to be compressed. Its size
        is not known yet, so the request goes chunked; if the transfer breaks, the layer
        is resumed (or restarted) like any blob once it is compressed (_transfer)."""
        opened: list[Iterator[bytes]] = []  # closed at the end: an open file cannot be deleted on Windows
        counted = [estimate]  # what the total counts for this layer: its real size once known

        def body() -> Iterator[bytes]:  # read anew from the file's start for each attempt
            pieces = compression.pieces()
            opened.append(pieces)
            sent = 0
            for piece in pieces:
                yield piece
                if not sent:  # once the first bytes left: a POST started with the PATCH would
                    self.ahead.open_upload()  # take the GIL just when the PATCH needs it
                    # (the config, at least, comes after a layer)
                sent += len(piece)
                if compression.done and counted[0] != compression.size:
                    self.report.add_total(compression.size - counted[0])
                    counted[0] = compression.size
                self.report.progress(sent)

        upload: Upload | None = None
        try:
            upload = self.ahead.take_upload()
            end = self.registry.send_chunk(self.repository, upload, body, 0, None, whole=True)
            if not compression.done or (end is not None and end != compression.size):
                raise RegistryError(ev.Failure(ev.FailureKind.NETWORK, "the registry did not take the whole layer",
                                               "it is sent again"), restart_blob=True)
            self.registry.finish_upload(self.repository, upload, compression.digest)
        except (httpx.HTTPError, RegistryError) as exc:
            failure = failure_for(exc, "layer upload", self.task.stall_timeout)
            if not _worth_another_upload(exc, failure):
                self._abandon(upload)
                raise RegistryError(failure) from exc  # close() stops the compression
            self.ahead.drop_upload()
            sent = self.report.current
            try:
                self._wait_for(compression)
            except Exception:  # its source broke meanwhile (the engine's export): the push fails
                self._abandon(upload)
                raise
            self._compressed(blob, compression, counted[0])
            if self._registry_has(blob):  # the answer to the final PUT was lost, not the blob
                self._uploaded(blob, 0)
                return
            upload, offset = self._resume_point(exc, blob, upload, sent)
            self.report.emit(ev.UploadResumed(self.task.image, blob.digest[7:19], offset, failure.message))
            self._uploaded(blob, self._transfer(blob, 1, True, upload, offset))
            return
        except Exception:  # the layer's source broke (the engine's export): the push fails
            self._abandon(upload)  # and the registry need not keep the partial blob for a week
            raise
        finally:
            for pieces in opened:
                pieces.close()  # type: ignore[attr-defined]
        self._compressed(blob, compression, counted[0])
        self._uploaded(blob, 0)

    def _wait_for(self, compression: Compression) -> None:
        """Until a layer is compressed, saying so now and then: a big layer takes minutes,
        and the supervisor's stall watch must see that this pusher lives."""
        began = time.monotonic()
        while not compression.wait(EXPORT_HEARTBEAT):
            self.report.log(f"compressing {compression.source.name}: {time.monotonic() - began:.0f} s so far")

    def _compressed(self, blob: Blob, compression: Compression, estimate: int) -> None:
        """The layer is compressed: it has a digest and a size now (the total's estimate
        of its uncompressed size is replaced by the real one)."""
        blob.digest, blob.size, blob.body = compression.digest, compression.size, compression.output
        blob.diff_id = blob.diff_id or compression.diff_id  # learnt as it was compressed from the export
        if blob.raw is not None:
            blob.raw.unlink(missing_ok=True)
            blob.raw = None
        blob.compressing = None
        self.report.add_total(blob.size - estimate)

    def _upload(self, blob: Blob, more_to_come: bool) -> None:
        """Upload one blob (unless the registry has it), resuming or restarting it when
        its transfer stalls or breaks; `more_to_come`: another blob follows it."""
        assert blob.body is not None
        if self.ahead.known_size(blob.digest) is not None:
            self.report.log(f"{blob.digest[7:19]}: exists")
            self._done_with(blob)
            return
        self._take_the_wire()
        self._uploaded(blob, self._transfer(blob, 0, more_to_come))

    def _uploaded(self, blob: Blob, resumes: int) -> None:
        self.report.log(f"{blob.digest[7:19]}: uploaded ({blob.size / 1e6:.1f} MB)"
                        + (f" after {resumes} resume(s)" if resumes else ""))
        self._done_with(blob)

    def _done_with(self, blob: Blob) -> None:
        """The registry has the blob: its bytes are not needed again (their memory goes
        back to the budget, for the layers after it)."""
        if blob.body is not None:
            blob.body.discard()
            blob.body = None
        self.report.finished_blob(blob.size)

    def _transfer(self, blob: Blob, resumes: int, more_to_come: bool, upload: Upload | None = None,
                  offset: int = 0) -> int:
        """The upload itself (in a new upload, or in `upload` from `offset`), resumed at the
        registry's offset or restarted in a new upload when it stalls or breaks (up to
        MAX_RESUMES times); returns the resumes. `more_to_come`: the next blob's upload is
        opened while this one's bytes are on the wire."""
        assert blob.body is not None
        short = blob.digest[7:19]
        while True:
            if upload is None:
                upload, offset = self.ahead.take_upload(), 0
            opened: list[Iterator[bytes]] = []
            try:
                body = self._body(blob, offset, opened, more_to_come)
                if offset == blob.size:  # the registry holds every byte: only the commit is left
                    end: int | None = offset
                elif offset:
                    end = self.registry.send_chunk(self.repository, upload, body, offset, blob.size - offset,
                                                   whole=False)
                else:
                    end = self.registry.send_chunk(self.repository, upload, body, 0, blob.size, whole=True)
                if end is not None and end != blob.size:
                    raise RegistryError(ev.Failure(
                        ev.FailureKind.NETWORK, f"{short}: the registry holds {end} of {blob.size} bytes after "
                        "the upload", "the upload is restarted"), restart_blob=True)
                self.registry.finish_upload(self.repository, upload, blob.digest)
            except (httpx.HTTPError, RegistryError) as exc:
                failure = failure_for(exc, f"{short}: upload", self.task.stall_timeout)
                if not _worth_another_upload(exc, failure) or resumes >= MAX_RESUMES:
                    self._abandon(upload)
                    raise RegistryError(failure) from exc
                self.ahead.drop_upload()
                if self._registry_has(blob):  # the answer to the final PUT was lost, not the blob
                    return resumes
                resumes += 1
                upload, offset = self._resume_point(exc, blob, upload, self.report.current)
                self.report.emit(ev.UploadResumed(self.task.image, short, offset, failure.message))
                continue
            except Exception:  # the blob's source broke (its file): the push fails
                self._abandon(upload)  # and the registry need not keep the partial blob for a week
                raise
            finally:
                for chunks in opened:
                    chunks.close()  # type: ignore[attr-defined]
            return resumes

    def _resume_point(self, exc: Exception, blob: Blob, upload: Upload | None, sent: int) -> tuple[Upload | None, int]:
        """Where a broken transfer goes on: in the same upload at the offset the registry
        holds, when it says one that adds up (no more than our bytes that left; all of
        them when only the commit was lost on its way); else in a new upload from the
        start, the broken one cancelled."""
        held = None if upload is None or getattr(exc, "restart_blob", False) else self.registry.upload_offset(
            self.repository, upload)
        if upload is not None and held is not None and 0 < held <= min(sent, blob.size):
            self.report.progress(held, force=True)
            return upload, held
        self._abandon(upload)
        self.report.progress(0, force=True)
        return None, 0

    def _abandon(self, upload: Upload | None) -> None:
        """Cancel an upload that will not be finished, so the registry does not keep its
        partial blob until its own purge (a week, by default)."""
        if upload is not None:
            self.registry.cancel_upload(self.repository, upload)

    def _registry_has(self, blob: Blob) -> bool:
        try:
            return self.registry.blob_size(self.repository, blob.digest) == blob.size
        except (httpx.HTTPError, RegistryError):
            return False

    def _body(self, blob: Blob, offset: int, opened: list[Iterator[bytes]],
              more_to_come: bool) -> Callable[[], Iterator[bytes]]:
        """The blob's bytes from `offset`, made anew for each attempt, counted as they leave;
        each reader made is listed in `opened`, for the caller to close (and its file).
        `more_to_come`: the next blob's upload is opened once the first bytes have left."""
        body = blob.body
        assert body is not None

        def read() -> Iterator[bytes]:
            sent = offset
            with body.open(offset) as source:
                while chunk := source.read(SEND_CHUNK):
                    yield chunk
                    if more_to_come and sent == offset:  # after the first bytes (see above)
                        self.ahead.open_upload()
                    sent += len(chunk)
                    self.report.progress(sent)

        def chunks() -> Iterator[bytes]:
            reader = read()
            opened.append(reader)
            return reader
        return chunks

    # --- config and manifest ---------------------------------------------------------------

    def _upload_config_and_build_manifest(self, exported: ExportedImage) -> tuple[bytes, str]:
        layers = []
        for blob in exported.layers:
            if not blob.digest:  # not wanted: the registry had it (self.have)
                blob = self.have[blob.diff_id]
            layers.append(blob)
        config = Spool.of_bytes(exported.config)
        digest = exported.config_digest
        self.report.add_total(len(exported.config))
        self._upload(Blob(digest, len(exported.config), exported.config_media_type, config), more_to_come=False)
        media_type = exported.manifest_media_type
        return image_manifest(media_type, digest, len(exported.config), layers), media_type

    def _put_manifests(self, manifest: bytes, media_type: str) -> dict[str, str]:
        self._started()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        digests = {}
        for ref in self.task.refs:
            repository, tag = _split(ref)
            answered = self.registry.put_manifest(repository, tag, manifest, media_type)
            if answered and answered != digest:
                raise RegistryError(ev.Failure(
                    ev.FailureKind.OTHER, f"the registry stored the manifest of {ref} as {answered}, not {digest}",
                    "the manifest was changed on its way; check proxies between Dockpool and the registry"))
            self.report.log(f"{ref}: digest: {digest} size: {len(manifest)}")
            digests[ref] = digest
        return digests


def image_manifest(media_type: str, config_digest: str, config_size: int, layers: list[Blob]) -> bytes:
    """The image's manifest: Docker v2 schema 2, or OCI when the image came as OCI, each
    with its own media types (a layer's gzip type is named the way the manifest names it)."""
    oci = media_type == OCI_MANIFEST
    converted = {DOCKER_GZIP_LAYER: OCI_GZIP_LAYER} if oci else {OCI_GZIP_LAYER: DOCKER_GZIP_LAYER}
    return dump_json({
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "size": config_size, "digest": config_digest},
        "layers": [{"mediaType": converted.get(layer.media_type, layer.media_type), "size": layer.size,
                    "digest": layer.digest} for layer in layers],
    })


def run_push(clients: Any, task: PushTask, emit: Callable[[Any], None],
             wire: AbstractContextManager[None] | None = None) -> None:
    """Push every ref with Dockpool's own uploader; emit PushStarted (once it uploads),
    then PushDone or PushFailed. `wire`: an upload slot, entered before the image's first
    upload and left when it is done (the supervisor's limit on the wire)."""
    reporter = _Reporter(task.image, emit)
    push: DirectPush | None = None
    failure: ev.Failure | None = None
    through_engine = False
    try:
        try:
            push = DirectPush(clients, task, reporter, wire or nullcontext())
            digests = push.run()
        except _NotExportable:  # its config is a few hundred bytes: no stall to beat, no wire to share
            through_engine = True
            reporter.log("the engine cannot export an image without layers from its classic image store: "
                         "it is pushed by the engine")
            from .push_engine import run_push as push_by_engine

            push_by_engine(clients.stream, task, emit)
        except RegistryError as exc:
            failure = exc.failure
        except ExportError as exc:
            failure = ev.Failure(ev.FailureKind.OTHER, f"reading the image from the engine: {exc}",
                                 "push this image through the engine instead (push = \"engine\")")
        except ExportBroken as exc:
            failure = ev.Failure(ev.FailureKind.ENGINE, str(exc), exc.hint)
        except httpx.HTTPError as exc:
            failure = failure_for(exc, "push", task.stall_timeout)
        except Exception as exc:  # the engine's inspect or export, a full disk, …
            failure = classify(exception_message(exc), ev.Stage.PUSH)
        if failure is not None:
            _fail(reporter, task, failure)
        elif not through_engine:
            _finish(reporter, task, digests)
    finally:
        if push is not None:
            try:
                push.leave_the_wire()
            finally:
                push.close()


def _finish(reporter: _Reporter, task: PushTask, digests: dict[str, str]) -> None:
    reporter.progress(0, force=True)
    reporter.emit(ev.PushDone(task.image, digests[task.refs[0]], digests))


def _fail(reporter: _Reporter, task: PushTask, failure: ev.Failure) -> None:
    reporter.log(failure.message, error=True)
    reporter.emit(ev.PushFailed(task.image, failure))
