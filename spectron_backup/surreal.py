"""Connections to SurrealDB from a URL, embedded or remote, through the 3.x Python SDK.

One small wrapper so that every other module speaks SurrealQL text and gets one clear error
(naming the URL without any secret) instead of an SDK exception.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import SecretStr

from spectron_backup.errors import OperationFailed, ServerUnreachable, UsageError
from spectron_backup.large_allocations import mmap_large_allocations
from spectron_backup.urls import redact_text, redact_url

log = logging.getLogger(__name__)

EMBEDDED_SCHEMES = ("mem", "memory", "surrealkv", "surrealkv+versioned", "file")
REMOTE_SCHEMES = ("ws", "wss", "http", "https")
SUPPORTED = "mem://, surrealkv://PATH, ws://HOST:PORT, wss://, http:// or https://"


@dataclass(frozen=True)
class Credentials:
    """How to sign in to a remote server. Embedded engines need none (the session is root)."""

    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    #: where the user is defined: None = root, else a namespace (and database) user
    auth_namespace: str | None = None
    auth_database: str | None = None


class AccessRefused(UsageError):
    """The server refused this session: a failed sign-in, or an operation it lacks permission
    for. The operator's configuration (exit 2), never a problem of the data."""


#: What the engine says of the statements of a transaction that another statement failed.
_CANCELLED = "not executed due to a failed transaction"


class DatabaseNotFound(UsageError):
    """The namespace or database to read does not exist (`SurrealConnection.use_existing`)."""

    def __init__(self, message: str, namespace: str, database: str) -> None:
        super().__init__(message)
        self.namespace, self.database = namespace, database

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.namespace, self.database)


class StatementError(OperationFailed):
    """A SurrealQL statement returned an error."""

    def __init__(self, message: str, statement_index: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.statement_index = statement_index


class ConnectionLost(OperationFailed):
    """The server stopped answering in the middle of the work (a reset connection, a timeout,
    an HTTP 5xx): the flows retry the step."""

    transient = True


class QueryRejected(OperationFailed):
    """The whole query was rejected before running (a parse error, for example)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def url_scheme(url: str) -> str:
    if url in ("mem", "memory"):
        return "mem"
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", url)
    if not match:
        raise UsageError(f"not a SurrealDB URL: {redact_url(url)!r}; use {SUPPORTED}")
    return match.group(1).lower()


def check_url(url: str) -> str:
    """The scheme of a URL this tool can open, checked without opening anything (a scheme it
    supports, a port that is a number); UsageError naming what is wrong otherwise."""
    scheme = url_scheme(url)
    shown = redact_url(url)
    if scheme == "rocksdb":
        raise UsageError(
            f"{shown}: rocksdb:// is not available in the embedded engine this tool "
            "ships (surrealdb-embedded 3.0.0b10 has surrealkv only); use surrealkv://PATH, "
            "or run a SurrealDB server on the RocksDB store and connect with ws://"
        )
    if scheme not in EMBEDDED_SCHEMES + REMOTE_SCHEMES:
        raise UsageError(
            f"unsupported SurrealDB URL scheme {scheme}:// in {shown!r}; use {SUPPORTED}"
        )
    if scheme in REMOTE_SCHEMES:
        try:
            urlsplit(url).port  # noqa: B018 - raises for a port that is not a number
        except ValueError as exc:
            raise UsageError(f"not a valid SurrealDB URL: {shown} ({exc})") from None
    return scheme


def embedded_path(url: str) -> str | None:
    """The directory of an embedded on-disk store, or None for memory and remote URLs."""
    scheme = url_scheme(url)
    if scheme in ("surrealkv", "surrealkv+versioned", "file"):
        return url.split("://", 1)[1]
    return None


def surreal_identifier(name: str) -> str:
    """Quote a table/namespace/database name as SurrealQL accepts it everywhere."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


_CHECK_SERVER = " (check the URL, and that the server is up)"


class SurrealConnection:
    """An open connection, with namespace/database selection and text queries."""

    def __init__(
        self,
        url: str,
        credentials: Credentials | None = None,
        *,
        must_exist: bool = False,
        blocking: bool = False,
    ):
        self.url = url
        #: open an on-disk store with the engine's blocking handle: one query at a time, each
        #: ~9% faster on large reads (benchmarks compare against it)
        self.blocking = blocking
        self.display_url = redact_url(url)
        self.scheme = check_url(url)
        self.credentials = credentials or Credentials()
        self._db: Any = None
        #: an on-disk embedded store's engine, opened with its async handle (see
        #: `submitter`); None for memory stores and servers, which use `_db`
        self._engine: _AsyncEngine | None = None
        #: a server connection that lost its way to the server (`ConnectionLost`): the SDK
        #: does not reconnect it, so whoever retries opens a new one (`SourceConnections`)
        self.broken = False
        path = embedded_path(url)
        if must_exist and path is not None and not os.path.isdir(path):
            raise UsageError(
                f"no SurrealDB store at {redact_url(path)} (from {self.display_url}); check the path"
            )
        self._open()

    @property
    def is_embedded(self) -> bool:
        return self.scheme in EMBEDDED_SCHEMES

    @property
    def has_transactions(self) -> bool:
        """Interactive transactions exist over WebSocket only (3.x SDK)."""
        return self.scheme in ("ws", "wss")

    def _open(self) -> None:
        from surrealdb import Surreal
        from surrealdb.errors import SurrealError

        if embedded_path(self.url) is not None and not self.blocking:
            try:
                self._engine = _AsyncEngine(self.url)
            except SurrealError as exc:
                raise self._open_error(exc) from None
            except OSError as exc:
                raise UsageError(f"cannot open SurrealDB at {self.display_url}: {exc}") from None
            return
        url = self.url
        parts = urlsplit(url)  # its port was checked by check_url
        if self.scheme in REMOTE_SCHEMES and self.scheme.startswith("ws") and not parts.path:
            url = url.rstrip("/") + "/rpc"
        try:
            db = Surreal(url)
            db.connect()
            if self.scheme in ("http", "https"):
                db.version()  # HTTP connects lazily: ask once so an unreachable server is told now
        except SurrealError as exc:
            raise self._open_error(exc) from None
        except OSError as exc:
            raise ServerUnreachable(
                f"cannot reach SurrealDB at {self.display_url}: {exc}{_CHECK_SERVER}"
            ) from None
        self._db = db
        if not self.is_embedded:
            self._sign_in()

    def _open_error(self, exc: Exception) -> UsageError:
        text = str(exc)
        if "already locked" in text:
            return UsageError(
                f"the embedded store {self.display_url} is in use by another process (an embedded "
                "store can be opened by one process at a time): stop that process, or point at "
                "the SurrealDB server that serves it"
            )
        text = _scrub(text.replace(self.url, self.display_url), self.credentials)
        if _is_network_fault(exc):
            return ServerUnreachable(
                f"cannot reach SurrealDB at {self.display_url}: {text}{_CHECK_SERVER}"
            )
        return UsageError(f"cannot open SurrealDB at {self.display_url}: {text}")

    def _sign_in(self) -> None:
        from surrealdb.errors import SurrealError

        creds = self.credentials
        try:
            if creds.token is not None:
                try:
                    self._db.authenticate(creds.token.get_secret_value())
                except ValueError:  # the SDK refuses, unsent, a token that is not a JWT
                    raise UsageError(
                        f"the token for SurrealDB at {self.display_url} is not a token SurrealDB "
                        "issues (three dot-separated parts); check SURREAL_TOKEN / --token"
                    ) from None
            elif creds.username:
                vars: dict[str, Any] = {
                    "username": creds.username,
                    "password": creds.password.get_secret_value() if creds.password else "",
                }
                if creds.auth_namespace:
                    vars["namespace"] = creds.auth_namespace
                if creds.auth_database:
                    vars["database"] = creds.auth_database
                self._db.signin(vars)
        except SurrealError as exc:
            message = _scrub(str(exc), creds)
            raise AccessRefused(
                f"SurrealDB at {self.display_url} refused {self._who()}: {message}; check the "
                "credentials (SURREAL_USER / SURREAL_PASS / SURREAL_TOKEN)"
            ) from None

    def _who(self) -> str:
        creds = self.credentials
        if creds.token is not None:
            return "the token"
        return f"user {creds.username!r}" if creds.username else "an anonymous session"

    def _not_allowed(self, message: str) -> AccessRefused:
        """The server refused this session an operation: the operator's configuration (exit 2)."""
        return AccessRefused(
            f"SurrealDB at {self.display_url} refused {self._who()} permission: "
            f"{_scrub(message, self.credentials)}; check the user's level (root, or --auth-ns) "
            "and roles (VIEWER to export, EDITOR to import), or the token's access"
        )

    # -- queries ---------------------------------------------------------------------

    def use(self, namespace: str, database: str) -> None:
        from surrealdb.errors import SurrealError

        engine, db = self._engine, self._db  # read once: `close` may run meanwhile
        if engine is not None:
            engine.use(self, namespace, database)
            return
        if db is None:
            raise self.closed_error()
        try:
            db.use(namespace, database)
        except SurrealError as exc:
            raise self._engine_error(exc) from None

    def query(
        self, sql: str, vars: dict[str, Any] | None = None, *, txn: UUID | None = None
    ) -> list[dict[str, Any]]:
        """Run SurrealQL; return one result dict (status, result) per statement.

        Raises QueryRejected when the query as a whole was refused (a parse error), UsageError
        when the session lacks permission, and OperationFailed when the server is gone.
        """
        from surrealdb.errors import SurrealError

        engine, db = self._engine, self._db  # read once: `close` may run meanwhile
        if engine is not None:  # an on-disk store: one query, waited for
            if txn is not None:
                raise ValueError("no transactions on an embedded store's async handle")
            return engine.submit(self, sql, vars).result()
        if db is None:
            raise self.closed_error()
        try:
            response = (
                db.query_raw(sql, vars or {}, txn_id=txn) if txn else db.query_raw(sql, vars or {})
            )
        except SurrealError as exc:
            raise self._engine_error(exc) from None
        return self._results(response)

    def closed_error(self) -> OperationFailed:
        """For a query asked of (or waiting on) a connection that was closed meanwhile: a run
        stopping (Ctrl-C, a failed flow) closes its connections while other work unwinds."""
        return OperationFailed(
            f"the connection to SurrealDB at {self.display_url} was closed; the query did not run"
        )

    def _engine_error(self, exc: Exception) -> UsageError | OperationFailed:
        from surrealdb.errors import NotAllowedError

        status = getattr(exc, "status", None)
        if isinstance(exc, NotAllowedError) or status in (401, 403):
            return self._not_allowed(str(exc))
        text = f"SurrealDB at {self.display_url}: {_scrub(str(exc), self.credentials)}"
        if _is_network_fault(exc):
            self.broken = True
            return ConnectionLost(text)
        return OperationFailed(text)

    def _results(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        if "error" in response:
            error = response["error"]
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            if _is_not_allowed(error):
                raise self._not_allowed(message)
            raise QueryRejected(message)
        return response.get("result") or []

    def run(
        self, sql: str, vars: dict[str, Any] | None = None, *, txn: UUID | None = None
    ) -> list[Any]:
        """Run SurrealQL; return each statement's result, raising on the first failed one."""
        return self.values(self.query(sql, vars, txn=txn))

    def values(self, results: list[dict[str, Any]]) -> list[Any]:
        """Each statement's result of `query`'s (or a submitted query's) results, raising on
        the first failed one."""
        failed = [(i, item) for i, item in enumerate(results) if item.get("status") != "OK"]
        if failed:
            # In a transaction every statement reports the same "not executed due to a failed
            # transaction"; the one that failed it says why.
            index, item = next(
                ((i, x) for i, x in failed if _CANCELLED not in str(x.get("result"))), failed[0]
            )
            if _is_not_allowed(item):
                raise self._not_allowed(str(item.get("result")))
            raise StatementError(str(item.get("result")), index)
        return [item.get("result") for item in results]

    def run_one(
        self, sql: str, vars: dict[str, Any] | None = None, *, txn: UUID | None = None
    ) -> Any:
        return _last(self.run(sql, vars, txn=txn))

    def last_value(self, results: list[dict[str, Any]]) -> Any:
        """The last statement's result (what `run_one` returns) of a query's results."""
        return _last(self.values(results))

    def submitter(self, workers: int) -> Submit:
        """A `submit(sql) -> Future` whose queries may run `workers` at a time (the caller
        bounds how many it has in flight); each future holds what `query` would return.

        The embedded engine's blocking handle holds the GIL through every query, so nothing
        else runs meanwhile, and the engine inserts on one core: its async handle lets several
        queries run at once (the dump benchmark's 208k records imported in 32.1 s instead of
        47.1 s on 2 cores; two export pages in flight keep ~1.85 cores busy where one keeps
        ~1.4). So an on-disk store is opened with the async handle, once: closing it and
        reopening the store with the blocking handle (as this once did around each block)
        deadlocked inside the engine now and then. Memory stores and remote servers run the
        submitted queries one at a time.
        """
        if workers < 2 or self._engine is None:
            return self.submit_now
        return partial(self._engine.submit, self)

    def submit_now(self, sql: str, *, txn: UUID | None = None) -> Future[list[dict[str, Any]]]:
        """`query`, as the done future of a `Submit` that runs one query at a time."""
        future: Future[list[dict[str, Any]]] = Future()
        try:
            future.set_result(self.query(sql, txn=txn))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    # -- catalogue -------------------------------------------------------------------

    def namespaces(self) -> list[str]:
        info = self.run_one("INFO FOR ROOT") or {}
        return sorted(info.get("namespaces", {}))

    def databases(self, namespace: str) -> list[str]:
        """Databases of an existing namespace (selecting a missing one would create it)."""
        info = self.run_one(f"USE NS {surreal_identifier(namespace)}; INFO FOR NS") or {}
        return sorted(info.get("databases", {}))

    def database_exists(self, namespace: str, database: str) -> bool:
        return namespace in self.namespaces() and database in self.databases(namespace)

    def use_existing(self, namespace: str, database: str) -> None:
        """Select a database that must exist, with an error that names what is missing."""
        if namespace not in self.namespaces():
            raise DatabaseNotFound(
                f"namespace {namespace!r} does not exist on {self.display_url}", namespace, database
            )
        if database not in self.databases(namespace):
            raise DatabaseNotFound(
                f"database {database!r} does not exist in namespace {namespace!r} "
                f"on {self.display_url}",
                namespace,
                database,
            )
        self.use(namespace, database)

    def engine_version(self) -> str:
        try:
            if self._engine is not None:
                return self._engine.version()
            return str(self._db.version())
        except Exception:
            return "unknown"

    # -- snapshot reads ------------------------------------------------------------

    @contextmanager
    def read_snapshot(self) -> Iterator[UUID | None]:
        """A read transaction over WebSocket (cancelled at the end), else None.

        Embedded stores are opened exclusively by this process, so nothing writes while we read;
        over HTTP there is no session and so no snapshot: callers record that.
        """
        if not self.has_transactions:
            yield None
            return
        txn = self._db.begin()
        try:
            yield txn
        finally:
            with suppress(Exception):  # a read transaction has nothing to lose
                self._db.cancel(txn)

    def snapshot_method(self) -> str:
        if self.is_embedded:
            return "exclusive embedded store"
        if self.has_transactions:
            return "read transaction"
        return "none (http has no session: pages were read in separate transactions)"

    def close(self) -> None:
        engine, self._engine = self._engine, None
        try:
            if engine is not None:
                engine.close()
        finally:
            if self._db is not None:
                try:
                    self._db.close()
                finally:
                    self._db = None

    def __enter__(self) -> SurrealConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Submits one query, returns its future results (see `SurrealConnection.submitter`).
Submit = Callable[[str], "Future[list[dict[str, Any]]]"]


class _EngineLoop(asyncio.SelectorEventLoop):
    """The engine handle's event loop, knowing when the engine's own threads are done with it.

    The engine completes each awaited call from one of its (tokio) threads, through
    `call_soon_threadsafe`, which wakes the loop with a socket write that releases the GIL.
    The loop may then finish the caller's work, and the process reach interpreter shutdown,
    before that thread has taken the GIL back to return: Python then ends the thread with
    pthread_exit, whose unwinding through the engine's Rust frames aborts the process
    (exit 134 after a successful command; 6 of 40 CLI imports under load, by hand). So the
    loop counts the threads inside that method, and `close` waits for them to leave."""

    def __init__(self) -> None:
        super().__init__()
        self._callers = 0
        self._callers_lock = threading.Lock()

    def call_soon_threadsafe(self, callback: Any, *args: Any, context: Any = None) -> Any:
        with self._callers_lock:
            self._callers += 1
        try:
            return super().call_soon_threadsafe(callback, *args, context=context)
        finally:
            with self._callers_lock:
                self._callers -= 1

    def wait_for_callers(self, timeout: float = 5.0) -> None:
        """Until no thread is inside `call_soon_threadsafe` (sleeping hands them the GIL)."""
        deadline = time.monotonic() + timeout
        while self._callers and time.monotonic() < deadline:
            time.sleep(0.001)


class _AsyncEngine:
    """The embedded engine's async handle, driven from an event loop on a thread of its own, so
    that blocking callers can have several queries in flight."""

    def __init__(self, url: str) -> None:
        from surrealdb import AsyncSurreal

        self.loop = _EngineLoop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="surrealdb-async", daemon=True
        )
        self.thread.start()
        self.db: Any = None
        self.closed = False
        #: `closed` and scheduling on the loop change together: nothing starts after a close
        self._lock = threading.Lock()
        try:
            self.db = AsyncSurreal(url)
            self._call(self.db.connect())
        except BaseException:
            self.close()
            raise

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def _schedule(self, conn: SurrealConnection, coroutine: Any) -> Future[Any]:
        """Run `coroutine` on the loop; its future fails with `conn.closed_error()` when a
        close comes first or cancels it (even before it started), never with a bare
        CancelledError."""
        with self._lock:
            if self.closed:
                coroutine.close()
                raise conn.closed_error()
            running = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        relayed: Future[Any] = Future()

        def relay(done: Future[Any]) -> None:
            if done.cancelled():
                relayed.set_exception(conn.closed_error())
            elif (error := done.exception()) is not None:
                relayed.set_exception(error)
            else:
                relayed.set_result(done.result())

        running.add_done_callback(relay)
        return relayed

    def submit(
        self, conn: SurrealConnection, sql: str, vars: dict[str, Any] | None = None
    ) -> Future[list[dict[str, Any]]]:
        return self._schedule(conn, self._query(conn, sql, vars or {}))

    def use(self, conn: SurrealConnection, namespace: str, database: str) -> None:
        self._schedule(conn, self.db.use(namespace, database)).result()

    def version(self) -> str:
        return str(self._call(self.db.version()))

    async def _query(
        self, conn: SurrealConnection, sql: str, vars: dict[str, Any]
    ) -> list[dict[str, Any]]:
        from surrealdb.errors import SurrealError

        try:
            response = await self.db.query_raw(sql, vars)
        except asyncio.CancelledError:  # only `close` cancels: the waiter gets a clear error
            raise conn.closed_error() from None
        except SurrealError as exc:
            raise conn._engine_error(exc) from None
        return conn._results(response)

    async def _shut_down(self) -> None:
        """Fail the queries still waiting (else their callers wait forever on a stopped
        loop), then close the engine."""
        waiting = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        await self.db.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
        try:
            if self.db is not None:
                self._call(self._shut_down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()
            self.loop.wait_for_callers()


def _last(values: list[Any]) -> Any:
    return values[-1] if values else None


def _is_not_allowed(error: Any) -> bool:
    """A statement or RPC error for lack of permission (IAM), not for a bad query.

    SurrealDB 3.x says so in `kind` (NotAllowed, with Auth details: not scripting or a function
    the server's capabilities forbid); 2.x only in its message.
    """
    if not isinstance(error, dict):
        return False
    if error.get("kind") == "NotAllowed":
        details = error.get("details")
        return not isinstance(details, dict) or details.get("kind") == "Auth"
    return "Not enough permissions" in str(error.get("result") or error.get("message") or "")


def _is_network_fault(exc: Exception) -> bool:
    """A fault of the way to the server, not of the request: no connection, a dropped one, a
    timeout, an HTTP 5xx (a server restarting behind a proxy). The flows retry these."""
    from surrealdb.errors import HttpStatusError, TransportError

    if isinstance(exc, HttpStatusError):
        return exc.status >= 500
    return isinstance(exc, TransportError)


def _scrub(text: str, creds: Credentials) -> str:
    """Remove any secret the SDK may have echoed into an error message: the password of a
    URL it quotes (`user:password@`), the configured password and token."""
    text = redact_text(text)
    for secret in (creds.password, creds.token):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "***")
    return text


def connect(
    url: str,
    credentials: Credentials | None = None,
    *,
    must_exist: bool = False,
    blocking: bool = False,
) -> SurrealConnection:
    if url_scheme(url) in EMBEDDED_SCHEMES:
        mmap_large_allocations()  # the engine's page buffers: see large_allocations
    return SurrealConnection(url, credentials, must_exist=must_exist, blocking=blocking)
