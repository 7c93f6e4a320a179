"""What the repository says a backup is (intact, damaged, unreadable, not a backup at all), and
which backup `latest` is for restore and for the drill, on the file store."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from spectron_backup.drill import DrillFailed, choose_backup
from spectron_backup.errors import UsageError
from spectron_backup.manifest import is_backup_id
from spectron_backup.repository import Repository, manifest_key, object_key
from spectron_backup.restore import select_backup
from spectron_backup.stores import FileStore, open_store
from tests.test_prune import write_backup

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path) -> FileStore:
    store = open_store((tmp_path / "target").as_uri())
    assert isinstance(store, FileStore)
    return store


@pytest.fixture
def three(store) -> list[str]:
    """Three intact backups a day apart, the newest a day old."""
    return [write_backup(store, NOW - timedelta(days=d)) for d in (3, 2, 1)]


def drill_latest(store, now=NOW):
    return choose_backup(Repository(store), "latest", 30, None, now, random.Random(1))


def test_backup_ids_are_exactly_what_backups_write():
    assert is_backup_id("20261125T120000Z-0a1b2c")
    for name in (
        "20261125T120000Z-keep-forever",
        "20261125T120000Zcopy",
        "20261125T120000Z-0a1b2c-old",
        "20261125T120000Z-0A1B2C",
        "20261325T120000Z-0a1b2c",  # month 13
        "README.txt",
    ):
        assert not is_backup_id(name), name


def test_an_object_missing_or_cut_short_makes_a_backup_damaged(store, three):
    repo = Repository(store)
    store.delete(object_key(three[0], "acme", "prod"))
    key = object_key(three[1], "spectron", "metadata")
    store.put_bytes(key, store.get_bytes(key)[:-3])
    entries = {e.backup_id: e for e in repo.backups()}
    assert entries[three[0]].damage == (
        f"backup {three[0]} is damaged: backups/{three[0]}/acme/prod.surql.zst is missing"
    )
    assert "metadata.surql.zst is" in (entries[three[1]].damage or "")
    assert "the manifest says" in (entries[three[1]].damage or "")
    assert [e.intact for e in entries.values()] == [False, False, True]
    assert [e.backup_id for e in repo.intact_backups()] == [three[2]]


def test_folders_that_are_not_backups_are_not_backups(store, three):
    # An operator's own folder, a stray file, and a copy of a real manifest in a folder of
    # another name: none is a backup, so none can become `latest`.
    store.put_bytes("backups/README.txt", b"ours")
    store.put_bytes(f"backups/{three[0]}-keep/x.bin", b"ours")
    store.put_bytes("backups/zz-copy/manifest.json", store.get_bytes(manifest_key(three[2])))
    repo = Repository(store)
    assert [e.backup_id for e in repo.backups()] == three
    strays = {e.backup_id for e in repo.backups(strays=True)} - set(three)
    assert strays == {"README.txt", f"{three[0]}-keep", "zz-copy"}
    assert select_backup(repo, "latest", now=NOW).backup_id == three[2]


def test_restore_latest_refuses_a_newest_backup_it_cannot_restore_and_names_the_next(store, three):
    repo = Repository(store)
    assert select_backup(repo, "latest", now=NOW).backup_id == three[2]

    store.put_bytes(manifest_key(three[2]), b'{"format": 1}')  # unreadable
    with pytest.raises(UsageError) as refused:
        select_backup(repo, "latest", now=NOW)
    message = str(refused.value)
    assert f"latest would be {three[2]}" in message and "manifest cannot be read" in message
    assert f"the newest intact one before it is {three[1]}" in message
    # chosen by id, the older one restores; the unreadable one never does
    assert select_backup(repo, three[1], now=NOW).backup_id == three[1]
    with pytest.raises(UsageError, match="cannot be restored"):
        select_backup(repo, three[2], now=NOW)

    store.delete(manifest_key(three[2]))  # an incomplete backup is simply not a candidate
    store.delete(object_key(three[1], "acme", "prod"))
    with pytest.raises(UsageError) as refused:
        select_backup(repo, "latest", now=NOW)
    assert "acme/prod.surql.zst is missing" in str(refused.value)
    assert f"the newest intact one before it is {three[0]}" in str(refused.value)
    # --before picks by the same rule
    before = NOW - timedelta(days=1, hours=12)
    with pytest.raises(UsageError, match=f"--before .* would be {three[1]}"):
        select_backup(repo, None, before=before, now=NOW)
    assert (
        select_backup(repo, None, before=NOW - timedelta(days=2, hours=12)).backup_id == (three[0])
    )


def test_a_backup_dated_in_the_future_is_not_taken_for_latest(store, three):
    skewed = write_backup(store, NOW + timedelta(days=365))
    repo = Repository(store)
    with pytest.raises(UsageError) as refused:
        select_backup(repo, "latest", now=NOW)
    assert f"latest would be {skewed}" in str(refused.value)
    assert "after now" in str(refused.value) and three[2] in str(refused.value)
    with pytest.raises(DrillFailed) as failed:
        drill_latest(store)
    assert failed.value.backup_id == skewed and "after now" in failed.value.failures[0]
    # a clock a few minutes apart is not skew
    assert select_backup(repo, "latest", now=NOW + timedelta(days=365) - timedelta(minutes=5))


def test_the_drill_of_latest_fails_on_a_newest_manifest_it_cannot_read(store, three):
    assert drill_latest(store).backup_id == three[2]
    manifest = json.loads(store.get_bytes(manifest_key(three[2])))
    manifest["tiers"] = ["hourly"]  # a newer tool's, or rot
    store.put_bytes(manifest_key(three[2]), json.dumps(manifest).encode())
    with pytest.raises(DrillFailed) as failed:
        drill_latest(store)
    assert failed.value.backup_id == three[2]
    assert "manifest" in failed.value.failures[0]
    # A missing object is left to the drill's per-database checks, which name the database.
    store.delete(manifest_key(three[2]))
    store.delete(object_key(three[1], "acme", "prod"))
    assert drill_latest(store).backup_id == three[1]
