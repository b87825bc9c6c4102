"""Registry requests made ahead of the upload that needs them.

With one pusher the link carries one blob at a time, and between two blobs it used to
wait for the next blob's HEAD (does the registry have it?) and POST (a new upload
session): 4 and 5 ms of a local registry's own work plus their round trips, measured
from its log, and more for a distant one. Made while the blob before is on the wire,
on threads of their own, they no longer pause the link. Neither carries blob bytes,
so the limit on the wire stays what it was.

What is made ahead is a hint: an answer that failed or is old is asked again at the
moment it is needed, where its failure counts as before; a registry that had a
hiccup a few seconds earlier costs nothing more than it did.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx

from .registry_http import RegistryClient, RegistryError, Upload

# An upload session opened ahead and unused for longer is replaced by a new one:
# registries keep a session for hours (the distribution registry: a week), and a
# minute still covers a prepared image's wait for its upload slot on a fast link.
OPENED_UPLOAD_MAX_AGE = 60.0
# A "not there" older than this is asked again: another pusher of the run may have
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

    def new_upload(self) -> Upload:
        """An upload session: the one opened ahead when it opened and is recent, else one
        opened now."""
        ahead, self._upload = self._upload, None
        if ahead is not None:
            future, opened_at = ahead
            if time.monotonic() - opened_at < OPENED_UPLOAD_MAX_AGE:
                try:
                    return future.result()
                except (httpx.HTTPError, RegistryError):
                    pass  # opened again now, where a failure counts
            else:
                self._opener.submit(self._cancel, future)
        return self._registry.start_upload(self._repository)

    def drop_upload(self) -> None:
        """The transfer on the wire broke: the session opened ahead, opened before whatever
        broke it, may be as dead (a registry restarted with a new secret, or purged) and is
        cancelled; the blob's next attempt opens a new one."""
        ahead, self._upload = self._upload, None
        if ahead is not None:
            self._opener.submit(self._cancel, ahead[0])

    # --- HEADs (asked from any thread, read by the upload thread) ---------------------------

    def ask(self, digest: str) -> None:
        """Ask now whether the registry has a blob that will be uploaded later."""
        if self._closed:
            return
        try:
            self._asked[digest] = (self._asker.submit(self._registry.blob_size, self._repository, digest),
                                   time.monotonic())
        except RuntimeError:  # closed meanwhile: nothing more is asked
            pass

    def blob_size(self, digest: str) -> int | None:
        """The blob's size if the registry has it (else None): the answer asked ahead when
        there is a usable one, else asked now. "There" stays true (a registry does not
        drop blobs mid-run); "not there" only for MISSING_ANSWER_MAX_AGE."""
        asked = self._asked.pop(digest, None)
        if asked is not None:
            future, asked_at = asked
            if not future.cancel():  # started: its answer comes sooner than a new one would
                try:
                    size = future.result()
                except (httpx.HTTPError, RegistryError):
                    size = None
                else:
                    if size is not None or time.monotonic() - asked_at < MISSING_ANSWER_MAX_AGE:
                        return size
        return self._registry.blob_size(self._repository, digest)

    # --- the end of the push -----------------------------------------------------------------

    def close(self) -> None:
        """Cancel a session opened ahead that no blob used, then close the registry client
        after the last request: on the opener's thread, so the pusher goes on at once (a
        registry that stopped answering holds that thread only, until its timeout)."""
        self._closed = True
        ahead, self._upload = self._upload, None
        self._asker.shutdown(wait=False, cancel_futures=True)

        def last() -> None:
            if ahead is not None:
                self._cancel(ahead[0])
            self._asker.shutdown(wait=True)
            self._registry.close()

        self._opener.submit(last)
        self._opener.shutdown(wait=False)

    def _cancel(self, opened: Future[Upload]) -> None:
        """Cancel the session a POST made ahead opened, once its answer is in (on the opener's
        thread, after that POST: the opener runs one request at a time)."""
        try:
            upload = opened.result()
        except (httpx.HTTPError, RegistryError):
            return
        self._registry.cancel_upload(self._repository, upload)
