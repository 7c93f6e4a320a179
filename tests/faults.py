"""Faults caused for real at the edge: loopback servers and proxies, no mocks of our code."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from contextlib import suppress
from urllib.parse import urlsplit

# --- a TCP proxy that drops connections ---------------------------------------------------------


class CuttingProxy:
    """A loopback TCP proxy in front of `upstream` (http://host:port) that resets a connection
    once more than `cut_upstream_after` bytes went towards the server on it (or
    `cut_downstream_after` bytes towards the client). `cuts` limits how many connections are
    cut (None: every one that gets that far); with `die_after_cut` the proxy then stops
    listening and resets every open connection, as if the network were gone."""

    def __init__(
        self,
        upstream: str,
        *,
        cut_upstream_after: int | None = None,
        cut_downstream_after: int | None = None,
        cuts: int | None = None,
        die_after_cut: bool = False,
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname, parts.port)
        self._limits = (cut_upstream_after, cut_downstream_after)
        self._cuts_left = cuts
        self._die = die_after_cut
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.cut_count = 0
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._dead = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._dead:
                self._reset(client)
                continue
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self.connections += 1
                self._sockets.update((client, server))
            state = {"cut": False}
            up, down = self._limits
            threading.Thread(
                target=self._pump, args=(client, server, up, state), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(server, client, down, state), daemon=True
            ).start()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        """Drop a connection now: shutdown() wakes a thread blocked on the socket (close()
        alone would not), and SO_LINGER 0 makes the final close send RST."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def _should_cut(self) -> bool:
        with self._lock:
            if self._cuts_left is not None:
                if self._cuts_left <= 0:
                    return False
                self._cuts_left -= 1
            self.cut_count += 1
            return True

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None, state) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if limit is not None and sent + len(data) > limit and not state["cut"]:
                    if self._should_cut():
                        state["cut"] = True
                        dst.sendall(data[: max(0, limit - sent)])
                        self._reset(src)
                        self._reset(dst)
                        if self._die:
                            self.kill()
                        return
                    limit = None  # out of cuts: pass this connection through
                dst.sendall(data)
                sent += len(data)
        except OSError:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.close()

    def kill(self) -> None:
        """Stop forwarding: reset every connection and refuse new ones."""
        self._dead = True
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
        with suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            self._reset(sock)

    close = kill


# --- an HTTP proxy that answers for the server ---------------------------------------------------


class RefusingProxy:
    """A loopback HTTP/1.1 proxy in front of `upstream` (an S3 server) that passes requests
    through until one matches `after(method, path)`; from the next request on, it answers every
    request itself with 403 AccessDenied, as S3 does when a policy or a key is revoked. The
    matching request itself is passed through (it succeeds). Requests that match
    `refuse(method, path)` are answered 403 whatever happened before, as a policy that grants
    only some actions (a read-only credential) does; they are not passed on. `after` is also
    where a test can act while a request waits for its answer: it runs before the client gets
    the server's response."""

    DENIED = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        b"<Message>Access Denied</Message></Error>"
    )

    def __init__(
        self,
        upstream: str,
        after: Callable[[str, str], bool] = lambda method, path: False,
        refuse: Callable[[str, str], bool] = lambda method, path: False,
    ) -> None:
        import http.client
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        parts = urlsplit(upstream)
        host, port = parts.hostname, parts.port
        proxy = self
        self.refused: list[str] = []
        self._tripped = False

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._tripped or refuse(self.command, self.path.split("?", 1)[0]):
                    proxy.refused.append(f"{self.command} {self.path}")
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(proxy.DENIED)))
                    self.end_headers()
                    self.wfile.write(b"" if self.command == "HEAD" else proxy.DENIED)
                    return
                conn = http.client.HTTPConnection(host, port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                finally:
                    conn.close()
                if after(self.command, self.path.split("?", 1)[0]):
                    proxy._tripped = True
                self.send_response(response.status)
                head = self.command == "HEAD"  # its Content-Length is the object's: keep it
                for name, value in response.getheaders():
                    skipped = ("transfer-encoding", "connection") + (
                        () if head else ("content-length",)
                    )
                    if name.lower() not in skipped:
                        self.send_header(name, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
