"""Fixtures for the store tests: both stores, and faults made at the network's edge.

Everything here is real: the file store works in tmp_path, the S3 store talks HTTP to moto's
server (tests/conftest.py: s3_server, s3_bucket). Faults moto cannot produce are made by
small servers on 127.0.0.1: a TCP proxy that cuts connections after some bytes, and an HTTP
server that denies every request the way S3 does for a bad access key.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from spectron_backup.stores import FileStore, S3Store, Store, open_store

MiB = 1024 * 1024
PART_SIZE = 5 * MiB  # S3's minimum part size, to keep the tests small
S3_PREFIX = "pfx/sub"


def make_s3_store(bucket: str, endpoint: str, prefix: str = S3_PREFIX, **options) -> S3Store:
    options.setdefault("part_size", PART_SIZE)
    options.setdefault("upload_concurrency", 2)
    options.setdefault("max_attempts", 2)  # retries are botocore's; keep failing tests fast
    options.setdefault("connect_timeout", 5)
    options.setdefault("read_timeout", 20)
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    store = open_store(url, endpoint_url=endpoint, **options)
    assert isinstance(store, S3Store)
    return store


@pytest.fixture
def make_store(s3_server, s3_bucket) -> Callable[..., S3Store]:
    """make_store(**options) -> an S3Store on the test bucket (options: see make_s3_store)."""
    stores: list[S3Store] = []

    def make(**options) -> S3Store:
        options.setdefault("bucket", s3_bucket)
        options.setdefault("endpoint", s3_server)
        store = make_s3_store(**options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def s3_client(s3_server, s3_bucket):
    """A plain boto3 client on the test server, to look behind the code under test."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    yield client
    client.close()


@pytest.fixture
def s3_store(s3_server, s3_bucket) -> Iterator[S3Store]:
    store = make_s3_store(s3_bucket, s3_server)
    yield store
    store.close()


@pytest.fixture
def file_store(tmp_path) -> FileStore:
    store = open_store((tmp_path / "backups").as_uri())
    assert isinstance(store, FileStore)
    return store


@pytest.fixture(params=["file", "s3"])
def store(request) -> Store:
    """Each store in turn (the S3 one only starts moto when it is asked for)."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def pending_uploads(store) -> Callable[[], list]:
    """The store's unfinished multipart uploads (a file store has none by construction)."""
    if isinstance(store, S3Store):
        return store.list_multipart_uploads
    return list


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


@pytest.fixture
def cutting_proxy(s3_server) -> Iterator[Callable[..., CuttingProxy]]:
    """cutting_proxy(**options) -> a CuttingProxy in front of the moto server."""
    proxies: list[CuttingProxy] = []

    def make(**options) -> CuttingProxy:
        proxy = CuttingProxy(s3_server, **options)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


# --- an S3 endpoint that answers every request with one error ----------------------------------


def s3_error_document(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<AWSAccessKeyId>AKIAWRONGWRONGWRONG0</AWSAccessKeyId>"
        "<RequestId>4442587FB7D0A2F9</RequestId><HostId>edge</HostId></Error>"
    ).encode()


class _ErrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    status = 403
    body = b""
    requests: list[str]

    def _answer(self) -> None:
        self.requests.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(self.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("x-amz-request-id", "4442587FB7D0A2F9")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

    def log_message(self, format, *args) -> None:  # quiet
        pass


@pytest.fixture
def s3_error_endpoint() -> Iterator[Callable[[int, str, str], tuple[str, list[str]]]]:
    """s3_error_endpoint(status, code, message) -> (endpoint URL, requests seen) of an HTTP
    server on 127.0.0.1 that answers every request with that status and S3 error document
    (HEAD gets the status alone, as from S3)."""
    servers: list[ThreadingHTTPServer] = []

    def make(status: int, code: str, message: str) -> tuple[str, list[str]]:
        seen: list[str] = []
        handler = type(
            "ErrorHandler",
            (_ErrorHandler,),
            {"status": status, "body": s3_error_document(code, message), "requests": seen},
        )
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", seen

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()
