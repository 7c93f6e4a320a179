"""The Spectron instance's SurrealDB as the flows reach it: credentials from the configuration,
a check before a flow starts, and the connections a run shares (the backup's exports, the
expire sweep's Contexts)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from spectron_backup.config import Config
from spectron_backup.errors import OperationFailed
from spectron_backup.surreal import Credentials, SurrealConnection, connect
from spectron_backup.urls import redact_url


def source_credentials(config: Config) -> Credentials:
    s = config.source
    return Credentials(
        username=s.username, password=s.password, token=s.token, auth_namespace=s.auth_namespace
    )


def check_source(config: Config) -> None:
    """Open and close the source once: an unreachable server, a missing embedded store or
    refused credentials are told before a flow starts (which would retry the first)."""
    connect(config.source.url, source_credentials(config), must_exist=True).close()


class SourceConnections:
    """Connections to the source for concurrent database exports.

    A server gets one connection (one session) per export, so exports run side by side. An
    embedded store can be opened by one process once: it is shared, and exports through it
    take turns (each already keeps two pages in flight: see `dump.pages.iter_pages`). Only the
    export holds a connection: one database's last parts and their completion in the store
    run while the next database exports.

    A server connection that lost its way to the server is not reused: the next `open` (a
    retry of the step) connects anew. Once closed, nothing opens again: a task still
    starting while a stopping run closes its connections must not reopen (and keep) the
    store.
    """

    def __init__(self, config: Config) -> None:
        self.url = config.source.url
        self.credentials = source_credentials(config)
        self._shared: SurrealConnection | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()
        #: at most `backups.parallelism` exports at once, whoever schedules them
        self._slots = threading.BoundedSemaphore(config.backups.parallelism)

    def open(self) -> SurrealConnection:
        """The shared connection (discovery, and every export of an embedded store)."""
        with self._open_lock:
            if self._closed:
                raise OperationFailed(
                    f"the connections to SurrealDB at {redact_url(self.url)} were closed: "
                    "the run is stopping"
                )
            if self._shared is not None and self._shared.broken:
                self._shared.close()
                self._shared = None
            if self._shared is None:
                self._shared = connect(self.url, self.credentials, must_exist=True)
            return self._shared

    @contextmanager
    def exclusive(self) -> Iterator[SurrealConnection]:
        """A connection for one export, held until the block ends."""
        with self._slots:
            shared = self.open()
            if shared.is_embedded:
                with self._lock:
                    yield shared
                return
            conn = connect(self.url, self.credentials)
            try:
                yield conn
            finally:
                conn.close()

    def close(self) -> None:
        with self._open_lock:
            self._closed = True
            if self._shared is not None:
                self._shared.close()
                self._shared = None
