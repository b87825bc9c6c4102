"""A small TCP proxy in front of the registry that can throttle or stall uploads.

Stalling keeps the connection open and silently stops forwarding, which is what
a wedged network path looks like to the Docker engine: no error, no progress.
"""

from __future__ import annotations

import socket
import struct
import threading
import time


class Proxy:
    def __init__(self, target: tuple[str, int], *, stall_after: int | None = None,
                 rate: float | None = None, stall_for: float = 30.0) -> None:
        self.target = target
        self.stall_after = stall_after  # client→server bytes on one connection before it stalls (once)
        self.rate = rate  # client→server bytes per second per connection
        self.stall_for = stall_for  # then the stalled connection is reset, as a NAT or firewall would
        self.stalled = threading.Event()
        self.connections: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closing = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upload: bool) -> None:
        sent = 0
        started = time.monotonic()
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if upload and self.stall_after is not None and not self.stalled.is_set() \
                        and sent + len(data) > self.stall_after:
                    self.stalled.set()
                    self._hold(source, sink)
                    return
                sink.sendall(data)
                sent += len(data)
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

    def _hold(self, source: socket.socket, sink: socket.socket) -> None:
        """Stall: read nothing and forward nothing, so the sender's buffers fill and its
        upload makes no progress; after `stall_for` seconds, reset both sides."""
        deadline = time.monotonic() + self.stall_for
        while not self._closing and time.monotonic() < deadline:
            time.sleep(0.1)
        for end in (source, sink):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            end.close()

    def close(self) -> None:
        self._closing = True
        self._listener.close()
        with self._lock:
            for connection in self.connections:
                try:
                    connection.close()
                except OSError:
                    pass
