"""What a command that runs a Prefect flow in this process shows on the console, and how it
ends: the one place `backup`, `drill`, `prune` and `expire` share.

Two things Prefect does by default are wrong for an operator at a terminal:

- it logs the tool's own errors (SpectronBackupError: a missing bucket, an unreachable
  source) with a full traceback, once for the task run and again for the flow run, per
  retry, burying the one `error:` line the command prints. Here they show as one line on
  the console; the Prefect API still stores the whole record, traceback included (the flow
  run's logs in the UI). Any other exception is a bug and keeps its traceback.
- with no PREFECT_API_URL it starts a temporary API server as a child process in the
  terminal's process group, so Ctrl-C stops the server too, and the flow engine then spends
  about 70 s retrying to record the crash on it before exiting 1. Here the temporary server
  is started with SIGINT blocked (a child keeps its parent's signal mask), so Ctrl-C reaches
  only this process; the server is stopped (SIGTERM) when the command ends.
- it gives that server 20 s to answer (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS),
  but the first start on a new PREFECT_HOME creates and migrates its database: 22.7 s on an
  idle 2-core machine, so the very first `demo` or `backup` could fail with a traceback.
  Here it gets at least STARTUP_SECONDS, and a server that does not answer is one error line.

Prefect is imported only inside these functions: the core package must not import it when
it is imported.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from spectron_backup.errors import OperationFailed, SpectronBackupError
from spectron_backup.urls import redact_text

if TYPE_CHECKING:
    from prefect.server.api.server import SubprocessASGIServer

#: how long to wait for the logs and events of the run to reach the temporary server before
#: it is stopped (as Prefect's own test harness does), per kind
DRAIN_SECONDS = 5.0
#: the least time the temporary server gets to answer (see the module's docstring); a longer
#: PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS wins
STARTUP_SECONDS = 120.0


def is_own_error(exc: BaseException | None) -> bool:
    """Whether `exc` is one of the tool's errors, or explicitly wraps one (`raise X from
    error`): only the error's message is news to the operator, not where it was raised. An
    exception merely raised while handling one of ours (`__context__`) is a bug, not ours."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SpectronBackupError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__
    return False


class OwnErrorsOnOneLine(logging.Filter):
    """On a console handler: a record carrying one of the tool's errors is shown without its
    traceback. The record itself is left whole (other handlers, the Prefect API's among
    them, still get the traceback): a cleaned copy is handed to the handler instead."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or not is_own_error(record.exc_info[1]):
            return True
        try:
            clean = logging.makeLogRecord(record.__dict__)
            clean.msg, clean.args = redact_text(record.getMessage()), None
        except Exception:  # a malformed record: the handler reports it as it always does
            return True
        clean.exc_info, clean.exc_text, clean.stack_info = None, None, None
        self.handler.handle(clean)
        return False


def console_handlers() -> list[logging.Handler]:
    """Prefect's console handlers, wherever its logging configuration attached them (the
    root logger by default; uvicorn's and fastapi's loggers share the same one), configured
    first if nothing in this process has imported Prefect's flow API yet."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()

    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                found.setdefault(id(handler), handler)
    return list(found.values())


def start_temporary_server() -> SubprocessASGIServer | None:
    """The temporary Prefect API server Prefect would start for this run (no PREFECT_API_URL),
    started now with SIGINT blocked so that it inherits that and outlives a Ctrl-C long
    enough to record the crashed run; None when there is an API to use, or a server some
    other code started (not ours to stop)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    )

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    if server.running:
        return None
    if not hasattr(signal, "pthread_sigmask"):  # no signal masks (Windows): as Prefect does
        return None
    # A Ctrl-C meanwhile stays pending and is raised as soon as the mask is restored.
    timeout = max(STARTUP_SECONDS, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        server.start(timeout=int(timeout))
    except RuntimeError:  # Prefect's "Timed out while attempting to connect ..."
        server.stop()
        raise OperationFailed(
            f"the temporary Prefect API server did not answer within {timeout:g} s (its "
            "database is in PREFECT_HOME): run a Prefect server (`make server`) and set "
            "PREFECT_API_URL to it, or raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
        ) from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return server


def stop_temporary_server(server: SubprocessASGIServer) -> None:
    """Send the run's remaining logs and events to the server, then stop it: now, so that its
    "Stopping temporary server" line comes before the command's own last line."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    try:
        APILogWorker.drain_all(timeout=DRAIN_SECONDS)
        EventsWorker.drain_all(timeout=DRAIN_SECONDS)
    finally:
        server.stop()


@contextmanager
def flow_console() -> Iterator[None]:
    """Run a flow in this process, inside this block, the way an operator expects it on the
    console: the tool's own errors without tracebacks, and Ctrl-C ending the command
    promptly (see the module's docstring)."""
    filters = [(handler, OwnErrorsOnOneLine(handler)) for handler in console_handlers()]
    for handler, one_line in filters:
        handler.addFilter(one_line)
    server: SubprocessASGIServer | None = None
    try:
        server = start_temporary_server()
        yield
    finally:
        try:
            if server is not None:
                stop_temporary_server(server)
        finally:
            for handler, one_line in filters:
                handler.removeFilter(one_line)
