"""A small TCP proxy in front of the registry that throttles, stalls or swallows traffic.

The failures are the ones users meet, not softened versions:
  - stall: after N uploaded bytes on one connection the proxy stops reading and
    forwarding, and holds both sides open until the proxy is closed (no reset:
    to the client this is a zero-window stall that never ends);
  - blackhole: connections are accepted and then nothing is read or answered;
  - throttle: per connection, or a budget shared by every connection (an uplink);
  - server errors: the next N connections get `503 Service Unavailable`, as a load
    balancer answers for an overloaded registry;
  - a lost answer: a request is forwarded, and the connection is cut before its answer
    reaches the client (a load balancer's idle timeout while the registry commits a
    big blob): the registry did the work, the client never hears of it;
  - a held request: a request is neither forwarded nor answered, and its connection is
    held open forever (a middlebox that dropped a kept-alive connection's state without
    a reset): the registry never hears of it, the client waits;
  - another answer: an answer's status line is rewritten, as a registry that answers a
    request with another 2xx than distribution does (Pulp's 204 to a PATCH), or a header
    of its head edited once (a Range short of what was sent, as ECR reports after it
    dropped a chunk).
"""

from __future__ import annotations

import re
import socket
import threading
import time

AUTHORIZATION = b"\r\nauthorization:"
METHODS = (b"GET", b"HEAD", b"POST", b"PATCH", b"PUT", b"DELETE")
BURST = 0.05  # seconds of a throttled link's capacity that may be used late


class _OneRequest:
    """A request to act on once: its method, and a marker in its request line."""

    def __init__(self) -> None:
        self.wanted: tuple[bytes, bytes] | None = None  # (method, marker)
        self.seen: list[bytes] = []  # the request line, once it came
        self._lock = threading.Lock()

    def starts(self, data: bytes) -> bool:
        """Whether the request starting in `data` is the one (then no other is)."""
        with self._lock:
            if self.wanted is None:
                return False
            method, marker = self.wanted
            line = data.split(b"\r\n", 1)[0]
            if not (line.startswith(method + b" ") and marker in line):
                return False
            self.wanted = None
            self.seen.append(line)
            return True


class _Exchange:
    """One connection's requests, as its answer side needs them."""

    def __init__(self) -> None:
        self.method = b""  # of the last request that started
        self.answer_lost = threading.Event()  # set by the upload side, acted on by the answer side


class Proxy:
    def __init__(self, target: tuple[str, int], *, stall_after: int | None = None, rate: float | None = None,
                 total_rate: float | None = None, listen: str = "127.0.0.1") -> None:
        self.target = target
        self.stall_after = stall_after  # client->server bytes on one connection before it stalls (once)
        self.rate = rate  # client->server bytes per second, per connection
        self.total_rate = total_rate  # client->server bytes per second, all connections together
        self.stalled = threading.Event()
        self.uploaded = 0  # client->server bytes forwarded
        self.connections = 0
        self._blackhole = threading.Event()
        self._errors_left = 0
        self._lose = _OneRequest()  # the request whose answer is lost
        self.lost = self._lose.seen  # request lines whose answers were lost
        self._hold = _OneRequest()  # the request held
        self.held = self._hold.seen  # request lines held
        self._sockets: list[socket.socket] = []
        self.authorized = 0  # requests that carried an Authorization header
        self._statuses: dict[tuple[bytes, bytes], bytes] = {}  # (method, status) -> status answered instead
        self._edits: list[tuple[bytes, re.Pattern[bytes], bytes]] = []  # (method, pattern, replacement), once each
        self.rewritten: list[bytes] = []  # "METHOD status" of each answer rewritten
        self._listener = socket.create_server((listen, 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._budget_at = time.monotonic()  # when the shared uplink is free again
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def blackhole(self, on: bool) -> None:
        """Swallow new connections (accept, never answer), or forward them again."""
        if on:
            self._blackhole.set()
        else:
            self._blackhole.clear()

    def fail_next(self, connections: int) -> None:
        """Answer the next `connections` connections with 503, as an overloaded front end."""
        self._errors_left = connections

    def lose_answer(self, method: bytes, marker: bytes) -> None:
        """Forward the next `method` request whose request line holds `marker`, then cut
        its connection before the answer reaches the client (once)."""
        self._lose.wanted = (method, marker)

    def hold_request(self, method: bytes, marker: bytes) -> None:
        """Hold the next `method` request whose request line holds `marker`: never
        forwarded, never answered, its connection open until the proxy closes (once)."""
        self._hold.wanted = (method, marker)

    def answer_instead(self, method: bytes, status: bytes, instead: bytes) -> None:
        """Answer every `method` request that the registry answers with `status` (b"202
        Accepted") with `instead` (b"204 No Content"), headers and body as they are."""
        self._statuses[(method, status)] = instead

    def edit_answer_once(self, method: bytes, pattern: bytes, replacement: bytes) -> None:
        """Edit the head of the next answer to a `method` request whose head matches the
        regular expression `pattern` (a header's value, say), once."""
        self._edits.append((method, re.compile(pattern), replacement))

    def _rewrite(self, answer: bytes, method: bytes) -> bytes:
        """The answer with its status line rewritten and its head edited, if asked for.
        Requests are not pipelined, so an answer starts a read and answers the last
        request line seen."""
        version, _, rest = answer.partition(b" ")
        if not version.startswith(b"HTTP/1."):
            return answer  # the rest of a body
        status, _, after = rest.partition(b"\r\n")
        instead = self._statuses.get((method, status))
        if instead is not None:
            self.rewritten.append(method + b" " + status)
            answer = version + b" " + instead + b"\r\n" + after
        head, separator, body = answer.partition(b"\r\n\r\n")
        for edit in list(self._edits):
            wanted, pattern, replacement = edit
            if wanted == method and pattern.search(head):
                self._edits.remove(edit)
                head = pattern.sub(replacement, head, count=1)
                self.rewritten.append(method + b" " + pattern.pattern)
        return head + separator + body

    @staticmethod
    def _answer_503(client: socket.socket) -> None:
        try:
            client.settimeout(5)
            client.recv(65536)  # the request (or a TLS hello, which gets the same answer)
            body = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nConnection: close\r\n"
                           + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        except OSError:
            pass
        finally:
            client.close()

    def _keep(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.extend(sockets)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._keep(client)
            self.connections += 1
            if self._blackhole.is_set():
                continue  # held open, never read: the client waits for an answer forever
            if self._errors_left > 0:
                self._errors_left -= 1
                threading.Thread(target=self._answer_503, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._keep(upstream)
            for end in (client, upstream):  # forward each piece as it comes, as a router does
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            exchange = _Exchange()  # what the upload side saw, for the answer side
            threading.Thread(target=self._pump, args=(client, upstream, True, exchange), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False, exchange), daemon=True).start()

    def _wait_for_uplink(self, size: int) -> None:
        """A token bucket: bytes go out at total_rate, with up to BURST seconds of unused
        capacity carried over, as a shaper on a real link does (without it, one connection
        would lose every scheduling delay of its own, and many connections would not)."""
        with self._lock:
            start = max(self._budget_at, time.monotonic() - BURST)
            self._budget_at = start + size / self.total_rate  # type: ignore[operator]
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _pump(self, source: socket.socket, sink: socket.socket, upload: bool, exchange: _Exchange) -> None:
        sent = 0
        tail = b""
        started = time.monotonic()
        chunk = 16384 if upload and (self.rate or self.total_rate) else 65536
        try:
            while True:
                data = source.recv(chunk)
                if not data or (not upload and exchange.answer_lost.is_set()):
                    break  # (the answer is dropped: both ends are shut below)
                if upload and data.split(b" ", 1)[0] in METHODS:
                    exchange.method = data.split(b" ", 1)[0]
                if not upload and (self._statuses or self._edits):
                    data = self._rewrite(data, exchange.method)
                if upload:  # the header may be split between two reads: the last bytes count too
                    window = tail + data.lower()
                    with self._lock:
                        self.authorized += window.count(AUTHORIZATION)
                    tail = window[-(len(AUTHORIZATION) - 1):]
                if upload and self._lose.starts(data):
                    exchange.answer_lost.set()
                if upload and self._hold.starts(data):
                    self._closing.wait()  # held for good, as a stall: nothing forwarded, nothing closed
                    return
                if upload and self.stall_after is not None and not self.stalled.is_set() \
                        and sent + len(data) > self.stall_after:
                    self.stalled.set()
                    self._closing.wait()  # stalled for good: nothing read, nothing sent, nothing closed
                    return
                if upload and self.total_rate:
                    self._wait_for_uplink(len(data))
                sink.sendall(data)
                sent += len(data)
                if upload:
                    with self._lock:
                        self.uploaded += len(data)
                if upload and self.rate:
                    ahead = sent / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            for connection in self._sockets:
                try:
                    connection.close()
                except OSError:
                    pass


class ConnectProxy:
    """An HTTP forward proxy that tunnels CONNECT requests (what HTTPS_PROXY points at),
    and remembers which hosts it tunnelled to."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(4096)
            if not data:
                client.close()
                return
            head += data
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        self.tunnels.append(target)
        self._sockets += [client, upstream]
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()
        for connection in self._sockets:
            connection.close()
