"""Fixtures for the store tests: both stores, and faults made at the network's edge.

Everything here is real: the file store works in tmp_path, the S3 store talks HTTP to moto's
server (tests/conftest.py: s3_server, s3_bucket). Faults moto cannot produce are made by
small servers on 127.0.0.1: a TCP proxy that cuts connections after some bytes, and an HTTP
server that denies every request the way S3 does for a bad access key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
