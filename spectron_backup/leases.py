"""Leases on a backup: a restore or a drill says "I am reading this backup" in the repository,
and prune leaves a backup under a live lease whole (the lock files of pgBackRest and restic).

    backups/<backup_id>/leases/<lease_id>.json
    {"backup_id": "...", "purpose": "restore", "host": "...", "pid": 123,
     "started_at": "RFC 3339 UTC", "expires_at": "RFC 3339 UTC"}

with hold_lease(repo, backup_id, "restore") as hold:     # written, then refreshed
    for warning in hold.warnings: ...                     # not protected, and why
    ...read the backup...                                 # deleted at exit, also on errors

A lease expires `ttl` (1 hour) after it was last written; its holder rewrites it every
`ttl / 4`, so a holder that dies stops protecting its backup within the hour and prune may
then delete it. Expiry is compared with the pruning host's wall clock: hosts may disagree by
up to `repository.CLOCK_TOLERANCE`, well inside the margin between a refresh and the expiry.

A lease that cannot be written (a read-only credential, legitimate for a restore in a
disaster) never stops the reader: the hold says so in `warnings`, and the backup is then not
protected from a concurrent prune. A failed refresh or deletion is only a warning too (a lease
left behind expires). After writing its lease the holder checks that the backup's manifest
still exists: a prune may have deleted the backup between its choice and the lease.

What remains is a tiny race: a prune that listed the backup's folder before the lease was
written deletes it anyway; the holder then fails on a missing object.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from spectron_backup.errors import SpectronBackupError, UsageError
from spectron_backup.manifest import rfc3339
from spectron_backup.repository import BACKUPS, LEASES, Repository, manifest_key
from spectron_backup.stores.base import ObjectNotFound

__all__ = [
    "LEASE_TTL",
    "BackupGone",
    "Lease",
    "LeaseHold",
    "hold_lease",
    "in_use_by",
    "is_lease_key",
    "lease_key",
    "live_leases",
    "new_lease_id",
]

log = logging.getLogger(__name__)

Purpose = Literal["restore", "drill"]
#: How long a lease protects its backup after it was last written.
LEASE_TTL = timedelta(hours=1)
#: How long the exit waits for a refresh in flight before deleting the lease.
_JOIN_SECONDS = 60.0


class BackupGone(UsageError):
    """The backup was deleted between its choice and its lease (exit status 2: choose another)."""


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def new_lease_id(now: datetime | None = None) -> str:
    """`YYYYMMDDTHHMMSSffffffZ-<8 hex>`: sorts by time, unique without coordination."""
    now = (now or _wall_clock()).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}"


def lease_key(backup_id: str, lease_id: str) -> str:
    return f"{BACKUPS}{backup_id}/{LEASES}{lease_id}.json"


def is_lease_key(key: str) -> bool:
    """Whether `key` is in the leases of a backup folder (`backups/<id>/leases/...`), as
    `Repository.backups` sorts them: whatever is there is a lease, readable or not."""
    if not key.startswith(BACKUPS):
        return False
    parts = key[len(BACKUPS) :].split("/")
    return len(parts) >= 3 and f"{parts[1]}/" == LEASES


@dataclass(frozen=True)
class Lease:
    key: str
    backup_id: str
    purpose: str
    host: str
    pid: int | None
    started_at: datetime | None
    expires_at: datetime | None
    #: why the object could not be read: such a lease counts as live (fail safe)
    problem: str | None = None

    def is_live(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def to_json(self) -> dict[str, Any]:
        """The lease object's content."""
        return {
            "backup_id": self.backup_id,
            "purpose": self.purpose,
            "host": self.host,
            "pid": self.pid,
            "started_at": rfc3339(self.started_at) if self.started_at else None,
            "expires_at": rfc3339(self.expires_at) if self.expires_at else None,
        }

    def summary(self) -> dict[str, Any]:
        """For reports: what the lease says, where it is, and why it cannot be read."""
        return {**self.to_json(), "key": self.key, "problem": self.problem}

    def __str__(self) -> str:
        return in_use_by([self.summary()])

    @classmethod
    def from_json(cls, key: str, data: Any) -> Lease:
        """The lease of the object `key`; ValueError when it is not a lease."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        purpose, host, pid = data.get("purpose"), data.get("host"), data.get("pid")
        if not isinstance(purpose, str) or not isinstance(host, str):
            raise ValueError("purpose or host is not a string")
        if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
            raise ValueError("pid is not an integer")
        return cls(
            key=key,
            backup_id=str(data.get("backup_id") or ""),
            purpose=purpose,
            host=host,
            pid=pid,
            started_at=_moment(data.get("started_at"), "started_at", required=False),
            expires_at=_moment(data.get("expires_at"), "expires_at", required=True),
        )


def in_use_by(summaries: Iterable[dict[str, Any]]) -> str:
    """Leases (their `Lease.summary()`, as in reports) in one line for people."""
    return "; ".join(
        f"unreadable lease {x['key']} ({x['problem']})"
        if x.get("problem")
        else f"{x['purpose']} on {x['host']} (pid {x['pid']}) until {x['expires_at']}"
        for x in summaries
    )


def _moment(value: Any, name: str, *, required: bool) -> datetime | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is not an RFC 3339 time")
    moment = datetime.fromisoformat(value)  # ValueError for anything else
    if moment.tzinfo is None:
        raise ValueError(f"{name} has no time zone")
    return moment.astimezone(UTC)


def live_leases(repo: Repository, keys: Iterable[str], now: datetime | None = None) -> list[Lease]:
    """The live leases among `keys` (a listing of backup folders, read by the caller): those
    not expired at `now` (the wall clock by default), and those that cannot be read (counted
    live, fail safe, with their `problem`). A lease deleted since the listing is not live."""
    now = now or _wall_clock()
    found = []
    for key in keys:
        if not is_lease_key(key):
            continue
        backup_id = key[len(BACKUPS) :].split("/", 1)[0]
        try:
            lease = Lease.from_json(key, repo.read_json(key))
        except ObjectNotFound:
            continue  # its holder finished meanwhile
        except (SpectronBackupError, OSError, ValueError) as exc:
            lease = Lease(key, backup_id, "unknown", "unknown", None, None, None, problem=str(exc))
        if lease.is_live(now):
            found.append(lease)
    return found


@dataclass
class LeaseHold:
    """What `hold_lease` yields: the lease (None when it could not be written) and the
    warnings met so far (the refresher thread may add some while the block runs)."""

    backup_id: str
    key: str
    lease: Lease | None = None
    warnings: list[str] = field(default_factory=list)
    #: how many times the lease was rewritten (tests, logs)
    refreshes: int = 0

    @property
    def protected(self) -> bool:
        return self.lease is not None

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)


@contextmanager
def hold_lease(
    repo: Repository,
    backup_id: str,
    purpose: Purpose,
    *,
    ttl: timedelta = LEASE_TTL,
    refresh: timedelta | None = None,
    clock: Callable[[], datetime] = _wall_clock,
) -> Iterator[LeaseHold]:
    """Hold a lease on `backup_id` while the block runs: written on entry, rewritten with a
    new expiry every `refresh` (default `ttl / 4`) from a daemon thread, deleted on exit
    (also on exceptions and KeyboardInterrupt). `clock` gives the times written in it.

    BackupGone when the backup's manifest no longer exists once the lease is written. A
    lease that cannot be written, refreshed or deleted is only a warning of the hold."""
    interval = ttl / 4 if refresh is None else refresh
    if not timedelta(0) < interval < ttl:
        raise ValueError("the refresh interval must be positive and shorter than the ttl")
    started = clock().astimezone(UTC)
    key = lease_key(backup_id, new_lease_id(started))
    hold = LeaseHold(backup_id, key)
    lease = Lease(
        key, backup_id, purpose, socket.gethostname(), os.getpid(), started, started + ttl
    )
    try:
        repo.write_json(key, lease.to_json())
        hold.lease = lease
    except (SpectronBackupError, OSError) as exc:
        hold.warn(
            f"backup {backup_id} is not protected from a concurrent prune: its {purpose} lease "
            f"could not be written ({exc}); do not prune while this {purpose} runs"
        )
    stop = threading.Event()
    refresher: threading.Thread | None = None
    try:
        if not repo.store.exists(manifest_key(backup_id)):
            raise BackupGone(
                f"backup {backup_id} was deleted after it was chosen (a prune ran meanwhile): "
                "run `spectron-backup list` and choose another"
            )
        if hold.lease is not None:
            refresher = threading.Thread(
                target=_refresh,
                args=(repo, hold, ttl, interval, clock, stop),
                name=f"lease-{backup_id}",
                daemon=True,
            )
            refresher.start()
        yield hold
    finally:
        stop.set()
        if refresher is not None:
            refresher.join(_JOIN_SECONDS)  # a rewrite in flight must not land after the delete
        if hold.lease is not None:
            try:
                repo.store.delete(key)
            except (SpectronBackupError, OSError) as exc:
                hold.warn(
                    f"the {purpose} lease {key} could not be deleted ({exc}); it expires at "
                    f"{_until(hold.lease)}, and prune ignores it after that"
                )


def _until(lease: Lease) -> str:
    return rfc3339(lease.expires_at) if lease.expires_at else "?"


def _refresh(
    repo: Repository,
    hold: LeaseHold,
    ttl: timedelta,
    interval: timedelta,
    clock: Callable[[], datetime],
    stop: threading.Event,
) -> None:
    """Rewrite the lease with a new expiry every `interval` until `stop` is set."""
    while not stop.wait(interval.total_seconds()):
        current = hold.lease
        assert current is not None
        renewed = replace(current, expires_at=clock().astimezone(UTC) + ttl)
        try:
            repo.write_json(current.key, renewed.to_json())
        except Exception as exc:  # a background thread: anything is only a warning
            hold.warn(
                f"the {current.purpose} lease on backup {hold.backup_id} could not be refreshed "
                f"({exc}); after {_until(current)} a prune may delete the backup"
            )
            continue
        hold.lease = renewed
        hold.refreshes += 1
