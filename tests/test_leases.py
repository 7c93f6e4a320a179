"""Leases on a backup (spectron_backup/leases.py) through the real Store interface: the file
store on tmp_path, the S3 store on moto's server, and an S3 credential that may not write
(tests/faults.py) for the leases that cannot be written, refreshed or deleted."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from spectron_backup.commands.list_backups import describe
from spectron_backup.garbage import collect_garbage, find_garbage
from spectron_backup.leases import (
    LEASE_TTL,
    BackupGone,
    Lease,
    hold_lease,
    is_lease_key,
    lease_key,
    live_leases,
    new_lease_id,
)
from spectron_backup.manifest import rfc3339
from spectron_backup.repository import Repository, manifest_key, object_key
from spectron_backup.stores import FileStore, S3Store, Store, open_store
from tests.faults import RefusingProxy
from tests.test_prune import set_age, write_backup, write_drill

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FAST = timedelta(milliseconds=20)


@pytest.fixture
def file_store(tmp_path) -> FileStore:
    store = open_store((tmp_path / "target").as_uri())
    assert isinstance(store, FileStore)
    return store


@pytest.fixture
def s3(s3_server, s3_bucket) -> Iterator[S3Store]:
    store = open_store(f"s3://{s3_bucket}/pfx", endpoint_url=s3_server, max_attempts=2)
    assert isinstance(store, S3Store)
    yield store
    store.close()


class ReadOnly:
    """An S3 credential that may read but not write or delete leases, while `on` (a policy
    without s3:PutObject and s3:DeleteObject on */leases/*): a proxy that answers 403."""

    def __init__(self, upstream: str) -> None:
        self.on = False
        self.proxy = RefusingProxy(
            upstream,
            refuse=lambda method, path: (
                self.on and method in ("PUT", "POST", "DELETE") and "/leases/" in path
            ),
        )


@pytest.fixture
def read_only(s3_server, s3_bucket) -> Iterator[tuple[ReadOnly, S3Store]]:
    """(the switch, the S3 store seen through it)."""
    guard = ReadOnly(s3_server)
    store = open_store(f"s3://{s3_bucket}/pfx", endpoint_url=guard.proxy.url, max_attempts=1)
    assert isinstance(store, S3Store)
    yield guard, store
    store.close()
    guard.proxy.close()


def lease_keys(store: Store, backup_id: str) -> list[str]:
    return [info.key for info in store.list(f"backups/{backup_id}/leases/")]


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Clock:
    """NOW on its first call, then ten minutes later on each call."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.calls += 1
            return NOW + timedelta(minutes=10 * (self.calls - 1))


# --- holding a lease ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["file_store", "s3"])
def test_a_lease_is_written_refreshed_and_deleted(where: str, request) -> None:
    store: Store = request.getfixturevalue(where)
    backup_id = write_backup(store, NOW - timedelta(days=1))
    before = sorted(info.key for info in store.list())
    repo = Repository(store)
    clock = Clock()
    with hold_lease(repo, backup_id, "restore", refresh=FAST, clock=clock) as hold:
        assert hold.protected and hold.warnings == []
        assert lease_keys(store, backup_id) == [hold.key]
        assert re.fullmatch(
            rf"backups/{backup_id}/leases/\d{{8}}T\d{{12}}Z-[0-9a-f]{{8}}\.json", hold.key
        )
        assert repo.read_json(hold.key) == {
            "backup_id": backup_id,
            "purpose": "restore",
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": rfc3339(NOW),
            "expires_at": rfc3339(NOW + LEASE_TTL),
        }
        wait_for(lambda: hold.refreshes >= 2)
        refreshed = Lease.from_json(hold.key, repo.read_json(hold.key))
        # each refresh writes the clock's time plus the ttl; the start stays
        assert refreshed.started_at == NOW
        assert refreshed.expires_at is not None
        assert refreshed.expires_at >= NOW + timedelta(minutes=20) + LEASE_TTL
        [live] = live_leases(repo, [hold.key], NOW + LEASE_TTL + timedelta(minutes=5))
        assert live.purpose == "restore" and live.problem is None
    assert lease_keys(store, backup_id) == []
    assert sorted(info.key for info in store.list()) == before  # nothing else touched
    assert hold.warnings == []


@pytest.mark.parametrize("error", [RuntimeError("import failed"), KeyboardInterrupt()])
def test_the_lease_is_deleted_when_its_holder_fails(file_store, error: BaseException) -> None:
    backup_id = write_backup(file_store, NOW - timedelta(days=1))
    repo = Repository(file_store)
    with (
        pytest.raises(type(error)),
        hold_lease(repo, backup_id, "drill", refresh=FAST) as hold,
    ):
        wait_for(lambda: hold.refreshes >= 1)
        assert lease_keys(file_store, backup_id) == [hold.key]
        raise error
    assert lease_keys(file_store, backup_id) == []
    assert not (file_store.root / "backups" / backup_id / "leases").exists()


def test_a_backup_deleted_before_its_lease_was_written_is_gone(file_store) -> None:
    """A prune deleted the backup between the reader's choice and its lease."""
    backup_id = write_backup(file_store, NOW - timedelta(days=1))
    repo = Repository(file_store)
    file_store.delete(manifest_key(backup_id))  # prune deletes the manifest first
    with (
        pytest.raises(BackupGone, match=f"backup {backup_id} was deleted after it was chosen"),
        hold_lease(repo, backup_id, "restore"),
    ):
        pytest.fail("the block must not run")
    assert lease_keys(file_store, backup_id) == []
    assert BackupGone.exit_code == 2


def test_lease_ids_sort_by_time_and_never_collide() -> None:
    ids = [new_lease_id(NOW + timedelta(microseconds=n)) for n in range(50)]
    assert ids == sorted(ids)
    assert len({new_lease_id(NOW) for _ in range(200)}) == 200
    assert is_lease_key(lease_key("20261124T120000Z-0a1b2c", ids[0]))
    assert not is_lease_key("backups/20261124T120000Z-0a1b2c/drills/x.json")
    assert not is_lease_key("backups/20261124T120000Z-0a1b2c/leases")


# --- which leases are live --------------------------------------------------------------------------


def test_live_leases_are_the_unexpired_and_the_unreadable(file_store) -> None:
    backup_id = write_backup(file_store, NOW - timedelta(days=1))
    repo = Repository(file_store)

    def lease(name: str, expires: datetime | str | None, **more: object) -> str:
        key = lease_key(backup_id, name)
        record = {
            "backup_id": backup_id,
            "purpose": "drill",
            "host": "h1",
            "pid": 7,
            "started_at": rfc3339(NOW - timedelta(hours=2)),
            "expires_at": rfc3339(expires) if isinstance(expires, datetime) else expires,
            **more,
        }
        repo.write_json(key, record)
        return key

    live = lease("a-live", NOW + timedelta(minutes=1))
    expired = lease("b-expired", NOW - timedelta(seconds=1))
    naive = lease("c-naive", "2026-11-24T13:00:00")
    no_expiry = lease("d-no-expiry", None)
    bad_pid = lease("e-bad-pid", NOW + timedelta(hours=1), pid="seven")
    broken = lease_key(backup_id, "f-broken")
    file_store.put_bytes(broken, b"{not json")
    vanished = lease_key(backup_id, "g-vanished")  # listed, then deleted by its holder
    keys = [object_key(backup_id, "acme", "prod"), manifest_key(backup_id)]
    keys += [live, expired, naive, no_expiry, bad_pid, broken, vanished]

    found = {lease.key: lease for lease in live_leases(repo, keys, NOW)}
    assert set(found) == {live, naive, no_expiry, bad_pid, broken}
    assert found[live].problem is None and str(found[live]) == (
        f"drill on h1 (pid 7) until {rfc3339(NOW + timedelta(minutes=1))}"
    )
    for key in (naive, no_expiry, bad_pid, broken):  # unreadable: live, and saying why
        assert found[key].problem, key
        assert str(found[key]).startswith(f"unreadable lease {key} (")
    assert "time zone" in (found[naive].problem or "")
    # the wall clock by default: the fixed leases of NOW are long expired
    assert {lease.key for lease in live_leases(repo, [live, expired])} == set()


# --- leases that cannot be written, refreshed or deleted ------------------------------------------


def test_a_lease_that_cannot_be_written_is_a_warning_not_a_failure(read_only) -> None:
    guard, store = read_only
    backup_id = write_backup(store, NOW - timedelta(days=1))
    guard.on = True  # a read-only credential, as a restore in a disaster may have
    repo = Repository(store)
    with hold_lease(repo, backup_id, "restore") as hold:
        assert not hold.protected
        [warning] = hold.warnings
        assert warning.startswith(
            f"backup {backup_id} is not protected from a concurrent prune: its restore lease "
            "could not be written ("
        )
        assert "access to bucket" in warning and "denied" in warning
        # the backup reads as ever
        assert repo.read_manifest(backup_id).backup_id == backup_id
    assert lease_keys(store, backup_id) == []
    assert len(hold.warnings) == 1  # nothing to refresh or delete
    assert guard.proxy.refused and all("/leases/" in r for r in guard.proxy.refused)


def test_a_lease_that_cannot_be_refreshed_or_deleted_is_a_warning(read_only) -> None:
    guard, store = read_only
    backup_id = write_backup(store, NOW - timedelta(days=1))
    repo = Repository(store)
    with hold_lease(repo, backup_id, "drill", refresh=FAST) as hold:
        assert hold.protected
        guard.on = True  # the credential loses its write access mid-drill
        wait_for(lambda: len(hold.warnings) >= 1)
    assert "could not be refreshed" in hold.warnings[0]
    assert "a prune may delete the backup" in hold.warnings[0]
    assert "could not be deleted" in hold.warnings[-1]
    assert "prune ignores it after that" in hold.warnings[-1]
    # Left behind, it expires: an hour later it protects nothing.
    [key] = lease_keys(store, backup_id)
    assert live_leases(repo, [key]) != []
    assert live_leases(repo, [key], datetime.now(UTC) + LEASE_TTL + timedelta(seconds=1)) == []


# --- leases are no part of the backup -------------------------------------------------------------


def test_leases_are_no_objects_of_the_backup_and_never_damage_it(file_store) -> None:
    backup_id = write_backup(file_store, NOW - timedelta(days=1))
    write_drill(file_store, backup_id, True, NOW)
    repo = Repository(file_store)
    [plain] = repo.backups()
    shown = describe(repo, plain)
    assert shown["in_use"] == []
    with hold_lease(repo, backup_id, "restore"):
        # an expired lease left by a holder that died, and one with a name of its own
        file_store.put_bytes(lease_key(backup_id, "20200101T000000000000Z-dead"), b"{}" * 300)
        [leased] = repo.backups()
        assert [o.key for o in leased.objects] == [o.key for o in plain.objects]
        assert len(leased.leases) == 2
        assert leased.drills == plain.drills and leased.intact and leased.damage is None
        assert leased.stored_bytes == plain.stored_bytes
        listed = describe(repo, leased)
        assert listed["bytes"] == shown["bytes"] and listed["intact"] and not listed["problem"]
        assert listed["last_drill"] == shown["last_drill"]
        # `list` shows who reads it (the unreadable `{}{}...` counts as live)
        purposes = sorted(lease["purpose"] for lease in listed["in_use"])
        assert purposes == ["restore", "unknown"]
        assert {k: v for k, v in listed.items() if k != "in_use"} == {
            k: v for k, v in shown.items() if k != "in_use"
        }


def test_an_incomplete_folder_is_garbage_whatever_its_leases(file_store) -> None:
    """Garbage collection ages an incomplete backup by its own objects: a lease written or
    refreshed now is no activity, and a folder holding only leases is garbage too."""
    grace = timedelta(hours=24)
    repo = Repository(file_store)
    wall = datetime.now(UTC)
    failed = write_backup(file_store, wall - timedelta(hours=30), complete=False)
    for info in file_store.list(f"backups/{failed}/"):
        set_age(file_store, info.key, wall - timedelta(hours=30))
    repo.write_json(lease_key(failed, new_lease_id()), {"purpose": "restore"})
    # what a prune leaves when it deleted a backup whose holder then died
    orphan = write_backup(file_store, wall - timedelta(days=9), complete=False, databases=())
    old = lease_key(orphan, new_lease_id(wall - timedelta(hours=30)))
    repo.write_json(old, {"purpose": "drill"})
    set_age(file_store, old, wall - timedelta(hours=30))
    young = write_backup(file_store, wall - timedelta(hours=1), complete=False)
    repo.write_json(lease_key(young, new_lease_id()), {"purpose": "drill"})

    garbage = find_garbage(repo, grace, wall)
    assert [g.key for g in garbage] == [f"backups/{orphan}/", f"backups/{failed}/"]
    assert garbage[1].detail.startswith("2 objects and 1 lease, no manifest.json")
    assert garbage[0].detail.startswith("0 objects and 1 lease, no manifest.json")
    assert collect_garbage(repo, garbage) == []
    assert [b.backup_id for b in repo.backups()] == [young]
