"""Which failures are worth a retry: transient faults only (a reset connection, an S3 5xx or
throttling, a server that went away), never bad input or a failed check."""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from spectron_backup.errors import SpectronBackupError, UsageError

#: faults from outside the tool's own errors (which say so in `transient`)
TRANSIENT = (ConnectionError, TimeoutError)


def is_transient(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, SpectronBackupError) and exc.transient:
            return True
        if isinstance(exc, UsageError):
            return False
        if isinstance(exc, TRANSIENT):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry a failed task run only for a transient fault."""
    try:
        state.result()
    except BaseException as exc:
        return is_transient(exc)
    return False


#: Task options for a long step on one database (its backup, its sweep): three retries from
#: 10 s, doubling, with jitter so parallel databases do not retry in step; transient faults only.
LONG_STEP_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient,
}

#: Task options for short steps that talk to the source or the store: two retries, 5 s then
#: 10 s apart, for transient faults only.
SHORT_STEP_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": exponential_backoff(5),
    "retry_condition_fn": retry_transient,
}
