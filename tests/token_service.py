"""A small registry token service, as the distribution spec describes one, for the tests.

The real docker-registry is configured with `auth: token` and this service's
certificate; it verifies the RS256-signed tokens (x5c header) this service
issues, so a push only succeeds with a token the registry itself accepted.
Tokens can be made to run out quickly (`lifetime`): the registry accepts a token
up to 60 s past its expiry (its clock leeway), so the `exp` written is shifted
back by that much and the registry really refuses the token after `lifetime`.
The realm may carry a query of its own and go through a redirect first
(`realm_path`, e.g. "/moved?tenant=team": /moved answers 301 to /token, the query
kept), as a token service behind a front end that sends http to https; and
/away answers 307 to `redirect_to` (another service, on another address).
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

ISSUER = "dockpool-test-issuer"
SERVICE = "dockpool-test-registry"
REGISTRY_LEEWAY = 60  # seconds the registry accepts a token past its `exp`


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    def __init__(self, folder: Path, users: dict[str, str], lifetime: float = 300.0,
                 realm_path: str = "/token", listen: str = "127.0.0.1") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.users = users
        self.lifetime = lifetime
        self.realm_path = realm_path
        self.issued: list[tuple[float, str, list[str]]] = []  # (time, user, scopes)
        self.queries: list[dict[str, list[str]]] = []  # of every token request answered
        self.posted: list[bytes] = []  # bodies of POSTs (OAuth: an identity token's refresh)
        self.logins_seen: list[str | None] = []  # the Authorization header of every GET
        self.redirect_to = ""  # where /away sends a request, with 307 (which keeps a POST's body)
        self.listen = listen
        self.refused = 0
        self.denied: set[str] = set()  # repositories no user gets any access to
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockpool test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                      .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                      .not_valid_before(now - datetime.timedelta(days=1))
                      .not_valid_after(now + datetime.timedelta(days=30))
                      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                      .sign(self._key, hashes.SHA256()))
        self.certificate = folder / "token-cert.pem"
        self.certificate.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server interface)
                service._answer(self)

            def do_POST(self) -> None:  # noqa: N802
                service._answer_post(self)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer((listen, 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://{self.listen}:{self.port}{self.realm_path}"

    def registry_auth(self) -> str:
        """The registry configuration's auth section for this service."""
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
                f"    rootcertbundle: {self.certificate}\n")

    def _user(self, header: str | None) -> str | None:
        """The authenticated user, "" for anonymous, None for wrong credentials."""
        if not header:
            return ""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return user if self.users.get(user) == password else None

    def _answer_post(self, request: BaseHTTPRequestHandler) -> None:
        """An OAuth token request: noted, and redirected from /away; this service grants
        tokens only through GET with a login."""
        if self._redirected(request):
            return
        self.posted.append(request.rfile.read(int(request.headers.get("Content-Length") or 0)))
        request.send_response(400)
        request.send_header("Content-Type", "application/json")
        request.end_headers()
        request.wfile.write(b'{"error":"unsupported_grant_type"}')

    def _redirected(self, request: BaseHTTPRequestHandler) -> bool:
        if not (self.redirect_to and urlparse(request.path).path == "/away"):
            return False
        request.send_response(307)
        request.send_header("Location", self.redirect_to)
        request.send_header("Content-Length", "0")
        request.end_headers()
        return True

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        self.logins_seen.append(request.headers.get("Authorization"))
        if self._redirected(request):
            return
        url = urlparse(request.path)
        if url.path == "/moved":
            request.send_response(301)
            request.send_header("Location", f"/token?{url.query}")
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        query = parse_qs(url.query)
        self.queries.append(query)
        user = self._user(request.headers.get("Authorization"))
        if user is None:
            self.refused += 1
            request.send_response(401)
            request.send_header("Content-Type", "application/json")
            request.end_headers()
            request.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"wrong username or password"}]}')
            return
        scopes = query.get("scope", [])
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else ("", "", "")
            if kind == "repository" and user and name not in self.denied:
                access.append({"type": "repository", "name": name, "actions": actions.split(",")})
        token = self._sign(user, access)
        self.issued.append((time.time(), user, scopes))
        body = json.dumps({"token": token, "access_token": token, "expires_in": int(self.lifetime),
                           "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _sign(self, user: str, access: list[dict[str, object]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "iat": now - 5, "nbf": now - 5,
                  "exp": now + int(self.lifetime) - REGISTRY_LEEWAY, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
