"""Talking to a registry over the OCI distribution API, with a timeout on everything.

The HTTP layer is httpx, chosen for what a push that must not stall needs:
separate connect, read, write and pool timeouts (a socket write that blocks
because the far end stopped reading ends after the stall timeout; urllib3, under
requests and the Docker SDK, has no write timeout), request bodies streamed
from a generator (bytes are counted as they leave, the blob is never held in
memory), HTTPS_PROXY/NO_PROXY from the environment, and any SSL context: on
Windows and macOS the operating system's trust store through truststore, where
developers behind a TLS-inspecting proxy have their corporate root (certifi does
not); elsewhere the system's CA bundle, read once per process (see ssl_context).
The registry clients that exist (oras, python-dxf) have neither write timeouts
nor resumable uploads.

Which scheme: HTTPS, verified. For loopback registries, those the engine lists
as insecure and those marked `insecure = true`, as Docker does: HTTPS without
verification, then plain HTTP. Docker's per-registry certificates
(certs.d/<host>/*.crt, client.cert, client.key) are honoured. Loopback
registries never go through a proxy (as Go's HTTP client decides).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from .. import __version__
from .events import Failure, FailureKind, Stage
from .failures import classify
from .reference import api_host, api_repository, is_insecure
from .registry_auth import TOKEN_CLIENT_ID, Challenge, Credentials, Token, parse_challenge, token_from_answer

USER_AGENT = f"dockpool/{__version__}"
MAX_CONNECT_TIMEOUT = 30.0
Body = bytes | Callable[[], Iterator[bytes]] | None

_schemes: dict[str, str] = {}  # host -> base URL that answered, per process

# Who checks a registry's certificate. "os": the operating system, through truststore (the
# default on Windows and macOS, where a TLS-inspecting proxy's corporate root is in the OS's
# store, not in a file). "openssl": the system's CA certificates where OpenSSL keeps them
# (the default elsewhere; truststore would read them again at every connection, some 50 ms
# of CPU each). DOCKPOOL_TLS_VERIFIER chooses the other, so the "os" path runs on Linux
# too (where truststore itself uses OpenSSL).
VERIFIER_SETTING = "DOCKPOOL_TLS_VERIFIER"
# Where distributions keep their CA bundle, for an OpenSSL built to look elsewhere (Debian
# and Ubuntu; Fedora and RHEL, new and old; SUSE; Alpine, Arch and the BSDs).
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
                  "/etc/pki/tls/certs/ca-bundle.crt", "/etc/pki/tls/cert.pem", "/etc/ssl/ca-bundle.pem",
                  "/etc/ssl/cert.pem")
_HASHED_NAME_RE = re.compile(r"^[0-9a-fA-F]{8}\.\d+$")
Stamps = tuple[tuple[str, int, int, int], ...]
# host -> (the files its "openssl" context read, stamped; the context)
_openssl_contexts: dict[str, tuple[Stamps, ssl.SSLContext]] = {}

class RegistryError(Exception):
    """A classified failure talking to the registry (its kind decides retries).
    `restart_blob`: the registry lost or refused this upload session (expired, purged,
    a range or digest it did not accept): the blob is sent again in a new upload."""

    def __init__(self, failure: Failure, restart_blob: bool = False) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.restart_blob = restart_blob

    @property
    def kind(self) -> FailureKind:
        return self.failure.kind


def certs_folders(host: str, windows: bool = sys.platform == "win32") -> list[Path]:
    """Docker's per-registry certificate folders for `host`: certs.d/<host[:port]>, or on
    Windows, where a folder's name cannot hold ':', certs.d/<host><port> as Docker names
    them there. `windows`: the Windows layout (a parameter, so tests reach it on Linux)."""
    if windows:
        roots = [Path(os.environ.get("ProgramData", r"C:\ProgramData")) / "docker" / "certs.d"]
        name = host.replace(":", "")
    else:
        roots = [Path("/etc/docker/certs.d")]
        name = host
    roots.append(Path.home() / ".docker" / "certs.d")
    return [root / name for root in roots if (root / name).is_dir()]


def verifier() -> str:
    """"os" or "openssl": DOCKPOOL_TLS_VERIFIER when it names one (in any case), else the
    platform's default."""
    chosen = os.environ.get(VERIFIER_SETTING, "").strip().lower()
    if chosen in ("os", "openssl"):
        return chosen
    return "os" if sys.platform in ("win32", "darwin") else "openssl"


def ssl_context(host: str, verify: bool) -> ssl.SSLContext:
    """The SSL context for a client of a registry host.

    The "openssl" one is made once per host in a process and shared by every client
    after it: reading the system's CA certificates parses some 140 of them (50 ms of
    CPU), and a push opens several connections per image. It is made anew when a file
    it read has changed (a CA put in certs.d while the window is open counts at the next
    push). truststore's is made per client, as before: it holds a lock through each
    handshake, and shared, one stalled handshake would hold up every other connection
    to the registry."""
    folders = certs_folders(host)
    if verify and verifier() == "openssl":
        return _openssl_context(host, folders)
    if verify:
        import truststore

        context: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    _load_certs_d(context, folders)
    return context


def _openssl_context(host: str, folders: list[Path]) -> ssl.SSLContext:
    stamps = _stamps(folders)
    known = _openssl_contexts.get(host)
    if known is not None and known[0] == stamps:
        return known[1]
    context = _SharedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_alpn_protocols(["http/1.1"])
    _load_system_store(context)
    _load_certs_d(context, folders)
    _openssl_contexts[host] = (stamps, context)
    return context


class _SharedContext(ssl.SSLContext):
    """A context shared by the clients of several threads. httpcore sets ALPN on it before
    each connection; OpenSSL frees the old list as it sets the new, while another thread
    may be reading it to open a connection. The list never changes here (HTTP/1.1), so it
    is set once, when the context is made, and the same list again changes nothing."""

    def set_alpn_protocols(self, protocols: Iterable[str]) -> None:
        wanted = list(protocols)
        if wanted != getattr(self, "_alpn", None):
            super().set_alpn_protocols(wanted)
            self._alpn = wanted


def _stamps(folders: list[Path]) -> Stamps:
    """Every file an "openssl" context for these certs.d folders may read, and what tells a
    changed file (a file replaced or rewritten in place, or one that appears)."""
    cafile, capaths = _openssl_locations()
    bundles = SYSTEM_BUNDLES if os.name == "posix" else ()
    files = [Path(name) for name in (cafile, *capaths, *bundles) if name]
    for folder in folders:
        try:
            files += sorted(folder.iterdir())
        except OSError as exc:
            raise _certs_d_error(folder, "cannot be read", exc) from exc
    stamps = []
    for path in files:
        try:
            stat = path.stat()
            stamps.append((str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino))
        except OSError:
            stamps.append((str(path), 0, 0, 0))
    return tuple(stamps)


def _openssl_locations() -> tuple[str | None, list[str]]:
    """Where OpenSSL looks for CA certificates: its file (None when there is none) and its
    folders (SSL_CERT_DIR may list several)."""
    paths = ssl.get_default_verify_paths()
    listed = os.environ.get(paths.openssl_capath_env, "")
    folders = [name for name in listed.split(os.pathsep) if name] if listed else [paths.capath] if paths.capath else []
    return paths.cafile, folders


def _load_system_store(context: ssl.SSLContext) -> None:
    """The system's CA certificates as OpenSSL finds them (SSL_CERT_FILE and SSL_CERT_DIR
    honoured; files it cannot read are skipped, as by OpenSSL; on Windows the system's
    stores); when nothing is where OpenSSL looks (a Python or a packaged app whose OpenSSL
    was built for another system's folders), the bundle the distribution keeps."""
    cafile, folders = _openssl_locations()
    if os.name != "posix" or cafile or any(_holds_hashed_certificates(folder) for folder in folders):
        context.load_default_certs()
        return
    for bundle in SYSTEM_BUNDLES:
        if os.path.isfile(bundle):
            try:
                context.load_verify_locations(cafile=bundle)
                return
            except ssl.SSLError:
                continue


def _holds_hashed_certificates(folder: str) -> bool:
    """OpenSSL finds a CA in a folder by its subject hash: names like 9d66eef0.0."""
    try:
        return any(_HASHED_NAME_RE.match(name) for name in os.listdir(folder))
    except OSError:
        return False


def _load_certs_d(context: ssl.SSLContext, folders: list[Path]) -> None:
    """Docker's certs.d: CA certificates (*.crt) and a client certificate (client.cert with
    client.key). A file that cannot be used fails the push, naming it."""
    for folder in folders:
        for ca in sorted(folder.glob("*.crt")):
            try:
                context.load_verify_locations(cafile=str(ca))
            except OSError as exc:  # ssl.SSLError among them
                raise _certs_d_error(ca, "cannot be read" if not isinstance(exc, ssl.SSLError)
                                     else "is not a usable CA certificate", exc) from exc
        cert, key = folder / "client.cert", folder / "client.key"
        if cert.is_file() and key.is_file():
            try:
                context.load_cert_chain(str(cert), str(key))
            except OSError as exc:
                raise _certs_d_error(cert, f"and {key.name} cannot be read, or are not a certificate and "
                                     "its private key", exc) from exc


def _certs_d_error(path: Path, what: str, exc: OSError) -> RegistryError:
    return RegistryError(Failure(
        FailureKind.TLS, f"{path}: {what} ({exc})",
        "Docker's certs.d folder holds PEM files: CA certificates (*.crt), and client.cert with "
        "client.key; fix or remove this one"))


def failure_for(exc: Exception, what: str, timeout: float) -> Failure:
    """An httpx error as a classified failure that names what was being done."""
    if isinstance(exc, RegistryError):
        return exc.failure
    if isinstance(exc, httpx.WriteTimeout):
        return Failure(FailureKind.STALLED, f"{what}: no progress for {timeout:g} s (the connection stalled)",
                       "the upload stalled; it is resumed or restarted, then retried")
    if isinstance(exc, httpx.ReadTimeout):
        return Failure(FailureKind.NETWORK, f"{what}: no answer from the registry for {timeout:g} s",
                       "the registry or the network path to it stopped answering; it is retried")
    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Failure(FailureKind.UNREACHABLE, f"{what}: could not connect within {timeout:g} s",
                       "check the registry URL and that the registry is reachable from this machine")
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, httpx.ConnectError) and isinstance(cause, ssl.SSLError) or isinstance(exc, ssl.SSLError):
        return classify(f"{what}: TLS: {cause or exc}", Stage.PUSH)
    failure = classify(f"{what}: {exc or type(exc).__name__}", Stage.PUSH)
    if failure.kind is FailureKind.OTHER and isinstance(exc, httpx.TransportError):
        # A connection that broke or was closed without an answer: transient.
        return Failure(FailureKind.NETWORK, failure.message,
                       "the connection to the registry broke mid-request; it is retried")
    return failure


def _error_text(response: httpx.Response) -> str:
    """The registry's own words: the errors[] of its JSON body, or the status line."""
    try:
        errors = response.json().get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    return f"{response.status_code} {response.reason_phrase}"


def status_failure(response: httpx.Response, what: str) -> Failure:
    status = response.status_code
    text = f"{what}: {status} {_error_text(response)}" if not _error_text(response).startswith(str(status)) \
        else f"{what}: {_error_text(response)}"
    if status in (401, 403):
        return Failure(FailureKind.AUTH, text, "log in to the registry (docker login, or Dockpool's Log in / "
                       "--username) with an account that may push to this repository")
    if status == 429:
        return Failure(FailureKind.RATE_LIMITED, text,
                       "the registry is rate limiting; lower the number of pushers or wait before retrying")
    if status >= 500:
        return Failure(FailureKind.REGISTRY_ERROR, text,
                       "the registry answered with a server error; it is retried, and its own log says why")
    return Failure(FailureKind.OTHER, text, "the registry refused the request; see the push log")


# The spec names one success status per request, but registries answer others (Pulp a
# PATCH with 204, distribution 2.0 a manifest PUT with 202): like `docker push`, any 2xx
# is success, but where it tells two outcomes apart (a mount's 201 or 202) and for an
# upload's start (202, as Docker requires too).

# Answers to an upload's PATCH or PUT meaning "this upload session cannot go on": 404
# BLOB_UPLOAD_UNKNOWN (expired or purged), 416 (a range it does not hold), 400
# BLOB_UPLOAD_INVALID / DIGEST_INVALID / SIZE_INVALID (what it holds is not the blob).
_UPLOAD_LOST = (400, 404, 416)


@dataclass
class Upload:
    """A blob upload session: where to send the next bytes, and the registry's wishes."""

    location: str
    min_chunk: int = 0  # OCI-Chunk-Min-Length: chunks (but the last) must be at least this long


class RegistryClient:
    """One registry host: scheme, credentials, tokens and the calls a push makes."""

    def __init__(self, host: str, credentials: Credentials | None, *, insecure: bool, timeout: float) -> None:
        self.host = host
        self.timeout = timeout
        self._credentials = credentials
        self._insecure = insecure or is_insecure(host)
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], Token] = {}
        self.base = ""
        loopback = is_insecure(host)  # localhost and 127.0.0.0/8: never through a proxy
        self._timeouts = httpx.Timeout(connect=min(timeout, MAX_CONNECT_TIMEOUT), read=timeout, write=timeout,
                                       pool=timeout)
        self._http = self._client(verify=not self._insecure, trust_env=not loopback)

    def _client(self, verify: bool, trust_env: bool) -> httpx.Client:
        return httpx.Client(timeout=self._timeouts, verify=ssl_context(self.host, verify), trust_env=trust_env,
                            follow_redirects=False, headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self._http.close()

    def push_login_problem(self, repository: str) -> str | None:
        """After connect(): what keeps this login from pushing to `repository`, or None.
        Raises RegistryError when a token service refuses the login."""
        if self._challenge is None:
            return None  # an open registry
        if self._challenge.scheme == "basic":
            if not (self._credentials and self._credentials.username):
                return f"{self.host} asks for a login, and none is stored for it"
            response = self._http.get(f"{self.base}/v2/", headers={"Authorization": self._credentials.basic()})
            return None if response.status_code == 200 else f"{self.host} refused the login ({response.status_code})"
        self._authorization((_push(repository),), renew=True)
        return None

    # --- connection and auth ------------------------------------------------------------------

    def connect(self) -> None:
        """Find the scheme the registry speaks (GET /v2/) and its auth challenge."""
        host = api_host(self.host)
        candidates = [f"https://{host}"] + ([f"http://{host}"] if self._insecure else [])
        known = _schemes.get(self.host)
        if known in candidates:
            candidates.remove(known)
            candidates.insert(0, known)
        last: Exception | None = None
        for base in candidates:
            try:
                response = self._http.get(f"{base}/v2/")
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                last = exc  # e.g. TLS spoken to a plain-HTTP registry: try the next scheme
                continue
            except httpx.HTTPError as exc:
                raise RegistryError(failure_for(exc, f"connecting to {base}", self.timeout)) from exc
            if response.status_code not in (200, 401):
                raise RegistryError(status_failure(response, f"GET {base}/v2/"))
            self.base = base
            _schemes[self.host] = base
            if response.status_code == 401:
                self._challenge = parse_challenge(response.headers.get_list("www-authenticate"))
            return
        assert last is not None
        raise RegistryError(failure_for(last, f"connecting to {self.host}", self.timeout)) from last

    def _authorization(self, scopes: tuple[str, ...], renew: bool) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._credentials.basic() if self._credentials and self._credentials.username else None
        if challenge.scheme != "bearer":
            return None
        token = self._tokens.get(scopes)
        if token is None or renew or not token.fresh:
            token = self._tokens[scopes] = self._fetch_token(challenge, scopes)
        return f"Bearer {token.value}"

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> Token:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError(Failure(FailureKind.AUTH, f"{self.host} asked for a token but named no realm",
                                        "the registry's auth configuration is broken; ask its administrator"))
        service = challenge.params.get("service", "")
        credentials = self._credentials
        what = f"getting a token from {realm}"
        # As `docker push` asks: redirects followed (a front end sending http to https;
        # httpx drops the login on a redirect to another host), the realm's own query kept,
        # no empty service, and the user named in `account` with a login. An identity
        # token's POST is not redirected: a 307 keeps the body, which would hand the
        # user's long-lived refresh token to whatever host the realm names.
        try:
            if credentials and credentials.identity_token:
                response = self._http.post(realm, data={
                    "grant_type": "refresh_token", "refresh_token": credentials.identity_token,
                    "service": service, "scope": " ".join(scopes), "client_id": TOKEN_CLIENT_ID},
                    follow_redirects=False)
                if response.is_redirect:
                    raise RegistryError(Failure(
                        FailureKind.AUTH, f"{what}: it redirects to {response.headers.get('location')}, where "
                        "Dockpool does not send the stored identity token",
                        "give the registry's token service its final address (its realm), or log in with a "
                        "username and password (--username, or Log in)"))
            else:
                params = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
                params.append(("client_id", TOKEN_CLIENT_ID))
                headers = {}
                if credentials and credentials.username and credentials.password:
                    params.append(("account", credentials.username))
                    headers["Authorization"] = credentials.basic()
                url = httpx.URL(realm)
                for key, value in params:  # added to the realm's own query, none replaced
                    url = url.copy_add_param(key, value)
                response = self._http.get(url, headers=headers, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise RegistryError(failure_for(exc, what, self.timeout)) from exc
        if not response.is_success:
            raise RegistryError(status_failure(response, what))
        try:
            return token_from_answer(response.json())
        except ValueError as exc:
            raise RegistryError(Failure(FailureKind.AUTH, f"{what}: {exc}",
                                        "the token service's answer is not usable; ask its administrator")) from exc

    def request(self, method: str, url: str, scopes: tuple[str, ...], *, body: Body = None,
                headers: dict[str, str] | None = None, follow: bool = False) -> httpx.Response:
        """One request with auth: a 401 fetches a new token (or learns the challenge)
        once and sends the request again (a streamed body is made anew). The login goes
        to the registry's own host only, as Docker sends it: never to another host that
        a Location names (an upload sent elsewhere)."""
        if not self.base:
            self.connect()
        target = urljoin(self.base + "/", url)
        own = _origin(target) == _origin(self.base)
        for attempt in (1, 2):
            sent_headers = dict(headers or {})
            authorization = self._authorization(scopes, renew=attempt == 2) if own else None
            if authorization:
                sent_headers["Authorization"] = authorization
            content = body() if callable(body) else body
            response = self._http.request(method, target, content=content, headers=sent_headers,
                                              follow_redirects=follow)
            if response.status_code == 401 and _origin(str(response.url)) != _origin(self.base):
                response.close()  # another host (an upload sent there, or a HEAD redirected) asks for a login
                named = response.url.netloc.decode()
                raise RegistryError(Failure(
                    FailureKind.AUTH, f"{self.host} sent the {method} on to {named}, which asks for a login: "
                    f"Dockpool sends the login to {self.host} only, as Docker does",
                    "set the registry's public URL (its http.host) to the address pushes use, "
                    "or push through the engine (push = \"engine\")"))
            if response.status_code != 401 or attempt == 2:
                return response
            challenge = parse_challenge(response.headers.get_list("www-authenticate"))
            if challenge is None or (self._challenge is not None and challenge.scheme == "basic"
                                     and self._challenge.scheme == "basic"):
                return response  # the credentials themselves were refused
            self._challenge = challenge
            response.close()
        raise AssertionError("unreachable")

    # --- the calls a push makes ----------------------------------------------------------------

    def blob_size(self, repository: str, digest: str) -> int | None:
        """The blob's size when the repository has it, else None: also when the registry
        answers the HEAD with an error (a front end that refuses HEAD, a redirect to
        storage signed for GET only), as `docker push` takes it: the upload that follows
        says what is wrong, if anything is. A refused login (401) and a broken connection
        raise. Asked with the push's scope, as Docker does: one token serves the whole
        push, and a registry may grant no pull on a repository that does not exist yet."""
        what = f"HEAD {repository}@{digest[:19]}"
        response = self._call("HEAD", f"/v2/{repository}/blobs/{digest}", (_push(repository),), what, follow=True)
        if response.status_code == 401:
            raise RegistryError(status_failure(response, what))
        if not response.is_success:
            return None
        return int(response.headers.get("content-length", "0"))

    def mount(self, repository: str, digest: str, source: str) -> Upload | None:
        """Mount a blob from another repository of this registry: None when it is mounted,
        else the upload the registry started instead (202)."""
        what = f"mounting {digest[:19]} from {source}"
        response = self._call("POST", f"/v2/{repository}/blobs/uploads/?mount={digest}&from={source}",
                              (_push(repository), _pull(source)), what)
        if response.status_code == 201:
            return None
        if response.status_code == 202:
            return self._upload(response)
        raise RegistryError(status_failure(response, what))

    def start_upload(self, repository: str) -> Upload:
        what = f"starting an upload to {repository}"
        response = self._call("POST", f"/v2/{repository}/blobs/uploads/", (_push(repository),), what)
        if response.status_code != 202:
            raise RegistryError(status_failure(response, what))
        return self._upload(response)

    def _upload(self, response: httpx.Response) -> Upload:
        location = response.headers.get("location")
        if not location:
            raise RegistryError(Failure(FailureKind.OTHER, "the registry started an upload without a Location",
                                        "the registry does not follow the distribution spec; use push = \"engine\""))
        try:
            minimum = int(response.headers.get("oci-chunk-min-length", "0"))
        except ValueError:
            minimum = 0
        return Upload(urljoin(str(response.url), location), minimum)

    def upload_offset(self, repository: str, upload: Upload) -> int | None:
        """How many bytes of an upload the registry holds (GET, its Range), or None when
        it cannot say (the upload is gone, or the registry does not resume)."""
        try:
            response = self.request("GET", upload.location, (_push(repository),))
            response.read()
        except (httpx.HTTPError, RegistryError):
            return None
        if not response.is_success:
            return None
        return _range_end(response.headers.get("range"))

    def send_chunk(self, repository: str, upload: Upload, chunk: Callable[[], Iterator[bytes]], start: int,
                   length: int | None, *, whole: bool) -> int | None:
        """PATCH bytes [start, start+length) of the blob; returns the registry's new
        offset (from Range; None when it does not say), and moves the upload to the
        Location it answers with.
        `whole`: the blob in one request, without Content-Range, as the engine sends it;
        `length` None: its size is not known yet (compressed as it streams), so the
        request goes chunked."""
        headers = {"Content-Type": "application/octet-stream"}
        if length is not None:
            headers["Content-Length"] = str(length)
        if not whole and length is not None:
            headers["Content-Range"] = f"{start}-{start + length - 1}"
        what = f"uploading to {repository}"
        response = self.request("PATCH", upload.location, (_push(repository),), body=chunk, headers=headers)
        response.read()
        if not response.is_success:  # 202 by the spec; Pulp answered 204 (see above _UPLOAD_LOST)
            raise RegistryError(status_failure(response, what), restart_blob=response.status_code in _UPLOAD_LOST)
        if response.headers.get("location"):
            upload.location = urljoin(str(response.url), response.headers["location"])
        return _range_end(response.headers.get("range"))

    def finish_upload(self, repository: str, upload: Upload, digest: str) -> None:
        separator = "&" if "?" in upload.location else "?"
        what = f"completing the upload of {digest[:19]}"
        response = self._call("PUT", f"{upload.location}{separator}digest={digest}", (_push(repository),), what,
                              headers={"Content-Length": "0"})
        if not response.is_success:  # 201 by the spec
            raise RegistryError(status_failure(response, what), restart_blob=response.status_code in _UPLOAD_LOST)
        answered = response.headers.get("docker-content-digest")
        if answered and answered != digest:
            raise RegistryError(Failure(FailureKind.OTHER, f"the registry stored {digest} as {answered}",
                                        "the blob was changed on its way; retry, and check proxies in between"))

    def cancel_upload(self, repository: str, upload: Upload) -> None:
        try:
            self.request("DELETE", upload.location, (_push(repository),)).close()
        except (httpx.HTTPError, RegistryError):
            pass  # an abandoned upload is cleaned up by the registry's own expiry

    def put_manifest(self, repository: str, tag: str, manifest: bytes, media_type: str) -> str | None:
        """Store the manifest under a tag; returns the digest the registry says it has."""
        what = f"PUT manifest {repository}:{tag}"
        response = self._call("PUT", f"/v2/{repository}/manifests/{tag}", (_push(repository),), what,
                              body=manifest, headers={"Content-Type": media_type})
        if not response.is_success:  # 201 by the spec; distribution 2.0 answered 202
            raise RegistryError(status_failure(response, what))
        return response.headers.get("docker-content-digest")

    def _call(self, method: str, url: str, scopes: tuple[str, ...], what: str, **options: Any) -> httpx.Response:
        try:
            response = self.request(method, url, scopes, **options)
            response.read()
            return response
        except httpx.HTTPError as exc:
            raise RegistryError(failure_for(exc, what, self.timeout)) from exc


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _range_end(header: str | None) -> int | None:
    """'0-1023' -> 1024, the next byte the registry expects. Registries write '0-0' for
    an empty upload as well as for one byte; it is taken as empty (a blob is never 1 byte)."""
    if not header:
        return None
    start, _, end = header.removeprefix("bytes=").partition("-")
    try:
        last = int(end)
        int(start)
    except ValueError:
        return None
    return 0 if last == 0 else last + 1


def dump_json(document: dict[str, Any]) -> bytes:
    """Manifest bytes as Dockpool sends them; their sha256 is the digest it reports."""
    return json.dumps(document, indent=3).encode()


def check_registry(registry: str, repository: str, auth: dict[str, str] | None, *, insecure: bool,
                   timeout: float = 10.0) -> str | None:
    """Whether a push to `registry` can start: it answers on /v2/, and the login Dockpool
    would use (this run's, else Docker's stored one) gets past its challenge for pushing
    to `repository`. Returns what is wrong, or None. For the window's Start, before
    every image is built for nothing."""
    from .reference import split_name
    from .registry_auth import find_credentials

    host, path = split_name(registry)
    target = api_repository(host, f"{path}/{repository}" if path else repository)
    try:
        credentials = find_credentials(host, auth)
    except Exception as exc:  # a credential helper that fails, a broken config file
        return f"the login for {host} cannot be read: {exc}"
    client: RegistryClient | None = None
    try:
        client = RegistryClient(host, credentials, insecure=insecure, timeout=timeout)
        client.connect()
        return client.push_login_problem(target)
    except RegistryError as exc:
        return exc.failure.message
    except httpx.HTTPError as exc:
        return failure_for(exc, f"checking {host}", timeout).message
    finally:
        if client is not None:
            client.close()
