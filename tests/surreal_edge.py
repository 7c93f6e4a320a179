"""A loopback imitation of SurrealDB 3.x's HTTP RPC endpoint, just enough for the Python SDK.

It exists only to cause faults we cannot cause otherwise: there is no SurrealDB server binary on
this machine, and the embedded engine has no users to refuse. Everything else in the suite runs
against the real engine; use this for sign-in and permission refusals, nothing more.

What it imitates (read from surrealdb==3.0.0b10, `connections/blocking_http.py`,
`request_message/descriptors/cbor_ws.py`, `connections/utils_mixin.py`, `errors.py`, and from
the server's `surrealdb_types::Error` / `dbs::QueryResult` wire shapes):

* `Surreal("http://...")` and `connect()` send nothing; every later call is one
  `POST {base}/rpc` with `Content-Type: application/cbor` and `Accept: application/cbor`, plus
  `Authorization: Bearer <token>` once signed in (and `Surreal-NS` / `Surreal-DB` after `use`).
  The SDK's HTTP transport never calls `/version`, `/health`, `/sql` or `/signin`.
* The body is a CBOR map `{id, method, params?}`: `version` has no params, `signin` has
  `[{user, pass, ns?, db?, ac?}]`, `authenticate` has `[token]` (sent as the bearer too),
  `use` has `[ns, db]`, `query` has `[sql, vars]`.
* The answer is HTTP 200 with a CBOR map `{id, result}` or `{id, error}`, the error being
  `{code, kind, message, details?}`; the SDK raises `parse_rpc_error(error)`, a
  `surrealdb.errors.ServerError` subclass chosen by `kind` (`NotAllowed` -> `NotAllowedError`).
  A failed sign-in is `code -32002, kind NotAllowed, message "There was a problem with
  authentication", details {kind: Auth, details: {kind: InvalidAuth}}`.
* A request whose bearer token the server does not accept is refused before the RPC layer:
  HTTP 401 with the plain-text message; the SDK raises `HttpStatusError` (a `TransportError`).
* `query` answers one result per statement, `{status: "OK", time, result}` or
  `{status: "ERR", time, result: <message>, kind, details}`; a statement refused for lack of
  permission is `kind NotAllowed`, message "IAM error: Not enough permissions to perform this
  action". The SDK's `query_raw` returns these as they are, without raising.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from surrealdb.data.cbor import decode, encode

VERSION = "surrealdb-3.0.2"
#: the token a successful sign-in hands out (JWT-shaped, as the SDK's authenticate requires)
TOKEN = "eyJhbGciOiJIUzUxMiJ9.eyJJRCI6InJvb3QifQ.c2lnbmF0dXJl"
AUTH_FAILED = "There was a problem with authentication"
PERMISSION_DENIED = "IAM error: Not enough permissions to perform this action"


@dataclass
class SurrealEdge:
    """What the running imitation was told, and what it has seen."""

    url: str
    username: str
    password: str
    refuse_queries: bool
    #: RPC methods received, in order (including ones refused at the HTTP layer)
    methods: list[str] = field(default_factory=list)


def _rpc_error(code: int, kind: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"code": code, "kind": kind, "message": message, "details": details}


_INVALID_AUTH = _rpc_error(
    -32002, "NotAllowed", AUTH_FAILED, {"kind": "Auth", "details": {"kind": "InvalidAuth"}}
)


def _statement_results(edge: SurrealEdge, sql: str) -> list[dict[str, Any]]:
    statements = [s for s in sql.split(";") if s.strip()] or [sql]
    if not edge.refuse_queries:
        return [{"status": "OK", "time": "15.2µs", "result": None} for _ in statements]
    refused = {
        "status": "ERR",
        "time": "21.4µs",
        "result": PERMISSION_DENIED,
        "kind": "NotAllowed",
        "details": {
            "kind": "Auth",
            "details": {
                "kind": "NotAllowed",
                "details": {"actor": edge.username, "action": "View", "resource": "namespace"},
            },
        },
    }
    return [dict(refused) for _ in statements]


def _handler(edge: SurrealEdge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._reply(404, b"Not Found", "text/plain")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/rpc":
                return self._reply(404, b"Not Found", "text/plain")
            if self.headers.get("Content-Type") != "application/cbor":
                return self._reply(415, b"Unsupported Media Type", "text/plain")
            request = decode(body)
            method = request.get("method")
            edge.methods.append(method)
            bearer = self.headers.get("Authorization", "")
            if bearer and bearer != f"Bearer {TOKEN}":
                # The server's HTTP auth layer checks the bearer before any RPC runs.
                return self._reply(401, AUTH_FAILED.encode(), "text/plain; charset=utf-8")
            params = request.get("params") or []
            answer: dict[str, Any] = {"id": request.get("id")}
            if method == "version":
                answer["result"] = VERSION
            elif method == "signin":
                creds = params[0] if params else {}
                if creds.get("user") == edge.username and creds.get("pass") == edge.password:
                    answer["result"] = TOKEN
                else:
                    answer["error"] = _INVALID_AUTH
            elif method in ("authenticate", "use"):
                answer["result"] = None  # a wrong token never gets here (401 above)
            elif method == "query":
                answer["result"] = _statement_results(edge, str(params[0]))
            else:
                answer["error"] = _rpc_error(
                    -32601,
                    "NotFound",
                    "Method not found",
                    {"kind": "Method", "details": {"name": method}},
                )
            return self._reply(200, encode(answer), "application/cbor")

    return Handler


@contextmanager
def surreal_edge(
    *, username: str = "root", password: str = "right", refuse_queries: bool = False
) -> Iterator[SurrealEdge]:
    """Serve the imitation on 127.0.0.1 (a free port) in a thread; yield it (`.url` is the
    http:// base URL to give the SDK). Sign-in succeeds for `username`/`password` only; with
    `refuse_queries` every statement of every query is refused for lack of permission."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    edge = SurrealEdge(
        url=f"http://127.0.0.1:{server.server_address[1]}",
        username=username,
        password=password,
        refuse_queries=refuse_queries,
    )
    server.RequestHandlerClass = _handler(edge)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield edge
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
