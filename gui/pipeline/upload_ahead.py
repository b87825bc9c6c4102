"""Registry requests made ahead of the upload that needs them.

With one pusher the link carries one blob at a time, and between two blobs it used to
wait for the next blob's HEAD (does the registry have it?) and POST (a new upload
session): 4 and 5 ms of a local registry's own work plus their round trips, measured
from its log, and more for a distant one. Made while the blob before is on the wire,
on threads of their own, they no longer pause the link. Neither carries blob bytes,
so the limit on the wire stays what it was.

What is made ahead is a hint: an answer that had failed before it was needed, or is
too old to trust, is asked again at that moment, where its failure counts as before;
a request still queued is dropped and made at once. A request the upload thread
waited for and that failed counts as if made inline: a registry that stopped
answering costs one timeout, not two.

Threads: open_upload, take_upload and drop_upload are for the upload thread only;
ask_blob_size may be called from any thread (the export's, the compressor's);
known_size from the upload thread; close() once, at the end of the push, after which
only ask_blob_size may still be called (and does nothing). close() also closes the
RegistryClient it was given: after the last request made ahead.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from .registry_http import RegistryClient, RegistryError, Upload

log = logging.getLogger(__name__)

# An upload session opened ahead and unused for longer is replaced by a new one:
# registries keep a session for hours (the distribution registry: a week; others were
# not checked), and ten minutes cover a prepared image's wait for its upload slot
# behind big images on a slow link.
OPENED_UPLOAD_MAX_AGE = 600.0
# A "not there" asked longer ago is asked again: another pusher of the run may have
# committed that blob (a layer two images share) since.
MISSING_ANSWER_MAX_AGE = 10.0


class AheadRequests:
    """The next upload session and the HEADs of blobs still to come, for one push."""

    def __init__(self, registry: RegistryClient, repository: str) -> None:
        self._registry = registry
        self._repository = repository
        # Sessions and HEADs on threads of their own: a POST never waits behind the HEADs
        # of layers compressed further ahead.
        self._opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockpool-open")
        self._asker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockpool-ask")
        self._upload: tuple[Future[Upload], float] | None = None
        self._asked: dict[str, tuple[Future[int | None], float]] = {}
        self._closed = False

    # --- upload sessions (the upload thread only) ------------------------------------------

    def open_upload(self) -> None:
        """Open the next blob's upload session now, unless one is open already."""
        if self._upload is None and not self._closed:
            self._upload = (self._opener.submit(self._registry.start_upload, self._repository), time.monotonic())

    def take_upload(self) -> Upload:
        """An upload session for the blob about to go: the one opened ahead when it is there
        and recent, else one opened now."""
        ahead, self._upload = self._upload, None
        if ahead is not None:
            opened, opened_at = ahead
            if time.monotonic() - opened_at >= OPENED_UPLOAD_MAX_AGE:
                self._opener.submit(self._cancel, opened)  # the registry may have dropped it
            elif not opened.cancel() and not _failed_before(opened):  # not still queued (behind a cancel)
                return opened.result()  # a failure the upload thread waited for counts
        return self._registry.start_upload(self._repository)

    def drop_upload(self) -> None:
        """The transfer on the wire broke: the session opened ahead, opened before whatever
        broke it, may be as dead (a registry restarted with a new secret, or purged) and is
        cancelled; the blob's next attempt opens a new one."""
        ahead, self._upload = self._upload, None
        if ahead is not None and not self._closed:
            self._opener.submit(self._cancel, ahead[0])

    # --- HEADs ---------------------------------------------------------------------------------

    def ask_blob_size(self, digest: str) -> None:
        """Ask now whether the registry has a blob that will be uploaded later (any thread)."""
        if self._closed:
            return
        try:
            self._asked[digest] = (self._asker.submit(self._registry.blob_size, self._repository, digest),
                                   time.monotonic())
        except RuntimeError:  # closed meanwhile: nothing more is asked
            pass

    def known_size(self, digest: str) -> int | None:
        """The blob's size if the registry has it, else None: from the HEAD asked ahead when
        it can be trusted, else asked now. "There" stays true (a registry does not drop
        blobs mid-run); "not there" only for MISSING_ANSWER_MAX_AGE."""
        asked = self._asked.pop(digest, None)
        if asked is not None:
            future, asked_at = asked
            # Started or answered: its answer comes sooner than a new one would.
            if not future.cancel() and not _failed_before(future):
                size = future.result()  # a failure the upload thread waited for counts
                if size is not None or time.monotonic() - asked_at < MISSING_ANSWER_MAX_AGE:
                    return size
        return self._registry.blob_size(self._repository, digest)

    # --- the end of the push -------------------------------------------------------------------

    def close(self) -> None:
        """Cancel a session opened ahead that no blob used, then close the registry client
        after the last request: on the opener's thread, so the pusher goes on at once (a
        registry that stopped answering holds that thread only, until its timeout; a
        worker that exits meanwhile waits for it, up to the supervisor's stop grace)."""
        if self._closed:
            return
        self._closed = True
        ahead, self._upload = self._upload, None
        self._asker.shutdown(wait=False, cancel_futures=True)

        def last() -> None:
            try:
                if ahead is not None:
                    self._cancel(ahead[0])
            finally:
                self._asker.shutdown(wait=True)
                self._registry.close()

        self._opener.submit(last).add_done_callback(_log_unexpected)
        self._opener.shutdown(wait=False)

    def _cancel(self, opened: Future[Upload]) -> None:
        """Cancel the session a POST made ahead opened, once its answer is in. Only ever run
        on the opener's thread, submitted after that POST: it waits for the POST, which the
        one thread has run by then (anywhere else it could wait for a queued POST forever)."""
        try:
            upload = opened.result()
        except (httpx.HTTPError, RegistryError):
            return
        self._registry.cancel_upload(self._repository, upload)


def _failed_before(future: Future[object]) -> bool:
    """The request had failed by the time it was needed: it is asked again then (a failure
    the caller waits for instead counts, as an inline request's would)."""
    return future.done() and future.exception() is not None


def _log_unexpected(future: Future[None]) -> None:
    """The end of a push on the opener's thread: nobody waits for it, so an unexpected
    error is logged rather than lost."""
    if not future.cancelled() and (error := future.exception()) is not None:
        log.error("closing the push's registry requests failed", exc_info=error)
