"""Pruning and garbage collection through the real Store interface: the file store on
tmp_path, the S3 store on moto's server (tests/conftest.py). Synthetic histories are written
as the backup flow writes them (objects, then manifest.json), with chosen backup times."""

from __future__ import annotations

import functools
import hashlib
import os
import random
import shutil
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spectron_backup.config import KeepConfig
from spectron_backup.garbage import Garbage, collect_garbage, find_garbage, incomplete_garbage
from spectron_backup.leases import hold_lease, lease_key, new_lease_id
from spectron_backup.manifest import DatabaseEntry, Manifest, new_backup_id, rfc3339
from spectron_backup.prune import apply_prune, plan_prune, prune_report
from spectron_backup.repository import Repository, manifest_key, object_key
from spectron_backup.retention import EXPIRED
from spectron_backup.stores import FileStore, PendingUpload, S3Store, Store, open_store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
DATABASES = (("acme", "prod"), ("spectron", "metadata"))


# --- writing synthetic backups ------------------------------------------------------------------


def write_backup(
    store: Store,
    time: datetime,
    *,
    complete: bool = True,
    databases=DATABASES,
    tiers=("daily",),
) -> str:
    """A backup folder as the flow writes it: one small object per database, then (if
    complete) its manifest.json. Returns its id."""
    repo = Repository(store)
    backup_id = new_backup_id(time)
    entries = []
    for ns, db in databases:
        data = f"-- {backup_id} {ns}/{db}\n".encode()
        key = object_key(backup_id, ns, db)
        store.put_bytes(key, data)
        entries.append(
            DatabaseEntry(
                ns=ns,
                db=db,
                key=key,
                bytes=len(data),
                raw_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    if complete:
        repo.write_manifest(
            Manifest(
                backup_id=backup_id,
                started_at=rfc3339(time),
                finished_at=rfc3339(time + timedelta(minutes=3)),
                tiers=list(tiers),
                tool_version="0.1.0",
                engine_version="3.0.2",
                databases=entries,
            )
        )
    return backup_id


def write_drill(store: Store, backup_id: str, passed: bool, when: datetime) -> None:
    Repository(store).write_drill(backup_id, f"{when:%Y%m%dT%H%M%SZ}", {"passed": passed})


def remove_backup(store: Store, backup_id: str) -> None:
    """A manual deletion: the whole folder."""
    for info in list(store.list(f"backups/{backup_id}/")):
        store.delete(info.key)


def complete_ids(store: Store) -> set[str]:
    return {b.backup_id for b in Repository(store).intact_backups()}


def all_keys(store: Store) -> list[str]:
    return [info.key for info in store.list()]


def kept(plan) -> set[str]:
    return {d.backup_id for d in plan.decisions if d.action == "keep"}


@functools.cache
def time_of(backup_id: str) -> datetime:
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


# --- the expected result, computed independently (brute force, by the letter of the rule) -------


def expected_kept(
    ids: set[str], keep: KeepConfig, now: datetime, drilled: set[str] = frozenset()
) -> set[str]:
    ordered = sorted(ids)  # ids sort by time
    result = set()

    def first_of(backup_id: str, period) -> bool:
        same = [i for i in ordered if period(time_of(i)) == period(time_of(backup_id))]
        return same[0] == backup_id

    for backup_id in ordered:
        t = time_of(backup_id)
        age_days = (now - t) / timedelta(days=1)
        if t > now:
            result.add(backup_id)
            continue
        if keep.daily_days and age_days <= keep.daily_days:
            result.add(backup_id)
        for days, period in (
            (keep.weekly_days, lambda t: t.isocalendar()[:2]),
            (keep.monthly_days, lambda t: (t.year, t.month)),
            (keep.yearly_days, lambda t: t.year),
        ):
            if days and age_days <= days and first_of(backup_id, period):
                result.add(backup_id)
    taken = [i for i in ordered if time_of(i) <= now]
    result.update(taken[-keep.min_keep :])
    passed = [i for i in ordered if i in drilled]
    if passed:
        result.add(passed[-1])
    return result


# --- a 400-day history on the file store ------------------------------------------------------


class History:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = FileStore(root)
        self.complete: set[str] = set()
        self.failed: set[str] = set()
        self.removed: set[str] = set()
        self.drilled: set[str] = set()  # with a passed drill


def build_history(root: Path, seed: int = 4) -> History:
    """400 days of nightly backups at ~02:00 with gaps (no backup), failures (a folder
    without manifest), a few extra manual backups in the afternoon, manual deletions (among
    them some Mondays, whose Tuesday must become the weekly) and restore drills."""
    rng = random.Random(seed)
    history = History(root)
    store = history.store
    start = NOW.replace(hour=2, minute=0) - timedelta(days=400)
    for day in range(401):
        night = start + timedelta(days=day, minutes=rng.randrange(0, 50), seconds=rng.randrange(60))
        if night > NOW:
            break
        roll = rng.random()
        if roll < 0.05:
            continue  # gap: the backup did not run
        if roll < 0.10:
            history.failed.add(write_backup(store, night, complete=False, databases=DATABASES[:1]))
            continue
        history.complete.add(write_backup(store, night))
        if rng.random() < 0.04:
            history.complete.add(write_backup(store, night + timedelta(hours=12)))
    by_day = sorted(history.complete)
    mondays = [i for i in by_day if time_of(i).weekday() == 0]
    removed = set(rng.sample(mondays, 6)) | set(rng.sample(by_day, 8))
    for backup_id in removed:
        remove_backup(store, backup_id)
    history.removed = removed
    history.complete -= removed
    candidates = sorted(history.complete)
    for backup_id in rng.sample(candidates, 12):
        passed = rng.random() < 0.5
        write_drill(store, backup_id, passed, time_of(backup_id) + timedelta(hours=5))
        if passed:
            history.drilled.add(backup_id)
    # The newest drill failed: it must not count.
    write_drill(store, candidates[-2], False, NOW - timedelta(hours=1))
    history.drilled.discard(candidates[-2])
    # Everything written now is "old" on the disk too: files dated at their backup's time.
    for path in root.rglob("*"):
        if path.is_file():
            backup_id = path.relative_to(root).parts[1]
            stamp = (time_of(backup_id) + timedelta(minutes=5)).timestamp()
            os.utime(path, (stamp, stamp))
    return history


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> History:
    return build_history(tmp_path_factory.mktemp("history") / "target")


@pytest.fixture
def history_copy(history, tmp_path) -> History:
    """A private copy of the module's history, for tests that delete."""
    copy = History(tmp_path / "target")
    shutil.copytree(history.root, copy.root)
    for name in ("complete", "failed", "removed", "drilled"):
        setattr(copy, name, set(getattr(history, name)))
    return copy


POLICIES = {
    "defaults": KeepConfig(),
    "monthly on, weekly off": KeepConfig(weekly_days=0, monthly_days=365),
    "min_keep 10, daily 7": KeepConfig(daily_days=7, min_keep=10),
    "all tiers": KeepConfig(daily_days=14, weekly_days=90, monthly_days=180, yearly_days=3650),
    "only min_keep": KeepConfig(daily_days=0, weekly_days=0, min_keep=5),
}


def test_history_is_what_it_claims(history):
    assert 330 < len(history.complete) < 400
    assert len(history.failed) > 5 and history.drilled
    assert complete_ids(history.store) == history.complete
    assert not history.removed & {b.backup_id for b in Repository(history.store).backups()}


@pytest.mark.parametrize("policy", POLICIES, ids=list(POLICIES))
def test_kept_set_equals_expected_set(history, policy):
    keep = POLICIES[policy]
    plan = plan_prune(Repository(history.store), keep, NOW)
    assert {d.backup_id for d in plan.decisions} == history.complete
    assert kept(plan) == expected_kept(history.complete, keep, NOW, history.drilled)
    assert plan.unreadable == [] and plan.problems == []
    # Failed backups are garbage (all older than the grace period), never decided.
    assert {g.key for g in plan.garbage} == {f"backups/{i}/" for i in history.failed}


def test_default_policy_by_hand(history):
    """The default policy's result, checked against the calendar rather than code."""
    plan = plan_prune(Repository(history.store), KeepConfig(), NOW)
    keep = kept(plan)
    daily = {i for i in history.complete if NOW - time_of(i) <= timedelta(days=30)}
    assert daily <= keep
    # Before the daily window: one per ISO week for a year, and the newest drilled backup.
    older = keep - daily - {max(history.drilled)}
    weeks = [time_of(i).isocalendar()[:2] for i in older]
    assert len(weeks) == len(set(weeks))
    assert all(NOW - time_of(i) <= timedelta(days=365) for i in older)
    assert 46 <= len(older) <= 49  # the 335 days between 30 and 365 are 47.9 weeks
    for backup_id in history.complete:  # every such week with a backup has its weekly
        if timedelta(days=31) < NOW - time_of(backup_id) < timedelta(days=357):
            week = time_of(backup_id).isocalendar()[:2]
            assert any(time_of(i).isocalendar()[:2] == week for i in keep)
    # A Monday deleted by hand: its week's weekly is the first backup still present.
    monday = next(
        i
        for i in sorted(history.removed)
        if time_of(i).weekday() == 0 and timedelta(days=40) < NOW - time_of(i) < timedelta(days=360)
    )
    week = time_of(monday).isocalendar()[:2]
    same_week = sorted(i for i in history.complete if time_of(i).isocalendar()[:2] == week)
    decisions = {d.backup_id: d for d in plan.decisions}
    assert decisions[same_week[0]].action == "keep"
    assert any(
        r.startswith("weekly: first complete backup of ISO week")
        for r in decisions[same_week[0]].reasons
    )
    assert all(decisions[i].action == "delete" for i in same_week[1:] if i not in history.drilled)


def test_apply_carries_out_the_plan_and_collects_failed_backups(history_copy):
    store = history_copy.store
    keep = KeepConfig()
    expected = expected_kept(history_copy.complete, keep, NOW, history_copy.drilled)
    repo = Repository(store)
    result = apply_prune(repo, plan_prune(repo, keep, NOW), dry_run=False)
    assert result.problems == [] and result.kept_by_lock == []
    assert set(result.deleted) == history_copy.complete - expected
    # Only the kept backups remain, whole; no failed folder, no stray object of a deleted one.
    assert complete_ids(store) == expected
    remaining = {b.backup_id for b in repo.backups()}
    assert remaining == expected
    for backup_id in expected:
        assert store.exists(object_key(backup_id, "acme", "prod"))
    # Pruning again changes nothing.
    again = apply_prune(repo, plan_prune(repo, keep, NOW), dry_run=False)
    assert again.deleted == [] and again.plan.garbage == []


def test_dry_run_deletes_nothing_and_reports_what_the_real_run_does(history_copy):
    store = history_copy.store
    repo = Repository(store)
    keep = KeepConfig(daily_days=10, weekly_days=60, min_keep=4)
    files_before = sorted(p for p in history_copy.root.rglob("*"))
    dry = prune_report(apply_prune(repo, plan_prune(repo, keep, NOW), dry_run=True))
    assert sorted(p for p in history_copy.root.rglob("*")) == files_before
    assert dry["dry_run"] is True and dry["deleted"] == []

    real = prune_report(apply_prune(repo, plan_prune(repo, keep, NOW), dry_run=False))
    assert real["dry_run"] is False
    for part in ("decisions", "garbage", "kept_by_lock", "unreadable", "problems"):
        assert real[part] == dry[part], part
    to_delete = {d["backup_id"] for d in dry["decisions"] if d["action"] == "delete"}
    assert set(real["deleted"]) == to_delete and to_delete
    assert complete_ids(store) == {
        d["backup_id"] for d in dry["decisions"] if d["action"] == "keep"
    }
    assert {b.backup_id for b in repo.backups()} == complete_ids(store)  # garbage gone too
    # The report is JSON, decisions newest first with their reasons.
    import json

    assert json.loads(json.dumps(real)) == real
    newest = real["decisions"][0]["reasons"]
    assert newest[0] == "daily: within 10 days"
    assert newest[-1] == "min_keep: one of the 4 newest complete backups"
    assert all(
        d["reasons"] == [EXPIRED] or d["reasons"][0].startswith("superseded:")
        for d in real["decisions"]
        if d["action"] == "delete"
    )


# --- floors -------------------------------------------------------------------------------------


@pytest.fixture
def file_store(tmp_path) -> FileStore:
    store = open_store((tmp_path / "target").as_uri())
    assert isinstance(store, FileStore)
    return store


def test_min_keep_holds_when_everything_is_old(file_store):
    ids = [write_backup(file_store, NOW - timedelta(days=900 + 3 * n)) for n in range(6)]
    repo = Repository(file_store)
    result = apply_prune(repo, plan_prune(repo, KeepConfig(), NOW), dry_run=False)
    assert complete_ids(file_store) == set(ids[:3])  # the three newest
    assert set(result.deleted) == set(ids[3:])
    assert all(
        d.reasons == ("min_keep: one of the 3 newest complete backups",)
        for d in result.plan.decisions
        if d.action == "keep"
    )


def test_newest_drilled_backup_survives(file_store):
    ids = [write_backup(file_store, NOW - timedelta(days=900 + 3 * n)) for n in range(8)]
    write_drill(file_store, ids[1], False, NOW)  # a failed drill counts for nothing
    write_drill(file_store, ids[5], False, NOW - timedelta(days=2))
    write_drill(file_store, ids[5], True, NOW - timedelta(days=1))  # any passed record
    write_drill(file_store, ids[6], True, NOW - timedelta(days=400))  # older: not protected
    repo = Repository(file_store)
    plan = plan_prune(repo, KeepConfig(), NOW)
    result = apply_prune(repo, plan, dry_run=False)
    assert complete_ids(file_store) == {ids[0], ids[1], ids[2], ids[5]}
    assert ids[6] in result.deleted
    assert not list(file_store.list(f"backups/{ids[6]}/"))  # drill records went with it
    decision = next(d for d in plan.decisions if d.backup_id == ids[5])
    assert decision.reasons == ("drilled: newest backup with a passed restore drill",)


def test_unreadable_manifests_and_drill_records_are_never_deleted(file_store):
    ids = [write_backup(file_store, NOW - timedelta(days=900 + 3 * n)) for n in range(6)]
    file_store.put_bytes(manifest_key(ids[4]), b"{not json")
    file_store.put_bytes(f"backups/{ids[5]}/drills/20260101T000000Z.json", b"\xff")
    file_store.put_bytes("backups/README.txt", b"not a backup")
    file_store.put_bytes("backups/old-stuff/x.bin", b"not a backup")
    repo = Repository(file_store)
    plan = plan_prune(repo, KeepConfig(), NOW)
    assert plan.unreadable == [ids[5], ids[4]]  # oldest first, as listed
    assert {d.backup_id for d in plan.decisions} == set(ids[:4])
    assert len(plan.problems) == 4
    assert plan.garbage == []  # a folder with an unreadable manifest is not garbage
    result = apply_prune(repo, plan, dry_run=False)
    assert result.deleted == [ids[3]]
    assert file_store.exists(manifest_key(ids[4])) and file_store.exists(manifest_key(ids[5]))
    assert file_store.exists("backups/README.txt") and file_store.exists("backups/old-stuff/x.bin")
    report = prune_report(result)
    assert sorted(report["unreadable"]) == sorted([ids[4], ids[5]])
    assert any("manifest cannot be read" in p for p in report["problems"])


def test_half_deleted_backup_is_incomplete_then_garbage(file_store, tmp_path):
    """If the deletion stops after the manifest, what is left is an incomplete backup."""
    ids = [write_backup(file_store, NOW - timedelta(days=900 + 3 * n)) for n in range(4)]
    repo = Repository(file_store)
    plan = plan_prune(repo, KeepConfig(), NOW)

    class Flaky(FileStore):
        def delete(self, key: str) -> None:
            if key.endswith("prod.surql.zst"):
                raise OSError("disk on fire")
            super().delete(key)

    flaky = Repository(Flaky(file_store.root))
    result = apply_prune(flaky, plan, dry_run=False)
    assert result.deleted == [ids[3]]
    assert "garbage collection will remove them" in result.problems[0]
    assert complete_ids(file_store) == set(ids[:3])
    # The rest is garbage once old enough (its objects were written just now).
    assert find_garbage(repo, timedelta(hours=24), datetime.now(UTC)) == []
    later = datetime.now(UTC) + timedelta(hours=25)
    garbage = find_garbage(repo, timedelta(hours=24), later)
    assert [g.key for g in garbage] == [f"backups/{ids[3]}/"]
    assert garbage[0].detail.startswith("1 object, no manifest.json")
    assert collect_garbage(repo, garbage) == []
    assert not list(file_store.list(f"backups/{ids[3]}/"))


# --- garbage: the grace period --------------------------------------------------------------------


def set_age(store: FileStore, key: str, modified: datetime) -> None:
    path = store.root.joinpath(*key.split("/"))
    os.utime(path, (modified.timestamp(), modified.timestamp()))


def test_incomplete_backups_are_collected_only_after_the_grace_period(file_store):
    grace = timedelta(hours=24)
    stale = write_backup(file_store, NOW - timedelta(hours=30), complete=False)
    # A slow backup: started 30 hours ago (its id says so), but still writing.
    slow = write_backup(file_store, NOW - timedelta(hours=30), complete=False)
    fresh = write_backup(file_store, NOW - timedelta(hours=2), complete=False)
    done = write_backup(file_store, NOW - timedelta(hours=40))
    for backup_id, ages in (
        (stale, (30, 25)),
        (slow, (30, 1)),
        (fresh, (0.25, 0.25)),
        (done, (40, 40)),
    ):
        keys = [info.key for info in file_store.list(f"backups/{backup_id}/")]
        for key, hours in zip(sorted(keys), ages * len(keys), strict=False):
            set_age(file_store, key, NOW - timedelta(hours=hours))
    repo = Repository(file_store)
    garbage = find_garbage(repo, grace, NOW)
    assert [(g.kind, g.key) for g in garbage] == [("incomplete-backup", f"backups/{stale}/")]
    assert timedelta(hours=24) < garbage[0].age <= timedelta(hours=25)
    assert garbage[0].detail.startswith("2 objects, no manifest.json")
    # The plan reports the same; the dry run keeps it; the real run removes it.
    plan = plan_prune(repo, KeepConfig(incomplete_grace=grace), NOW)
    assert plan.garbage == garbage
    apply_prune(repo, plan, dry_run=True)
    assert file_store.exists(object_key(stale, "acme", "prod"))
    assert apply_prune(repo, plan, dry_run=False).problems == []
    assert {b.backup_id for b in repo.backups()} == {slow, fresh, done}
    # Almost a day later the slow one is past the grace period too (the fresh one is not).
    later = find_garbage(repo, grace, NOW + timedelta(hours=23, minutes=30))
    assert [g.key for g in later] == [f"backups/{slow}/"]


def test_a_pending_upload_in_a_folder_counts_as_activity(file_store):
    old = write_backup(file_store, NOW - timedelta(hours=40), complete=False)
    for info in file_store.list(f"backups/{old}/"):
        set_age(file_store, info.key, NOW - timedelta(hours=39))
    entries = Repository(file_store).backups(load_manifests=False)
    upload = PendingUpload(f"backups/{old}/big/db.surql.zst", "u-1", NOW - timedelta(hours=3))
    grace = timedelta(hours=24)
    assert incomplete_garbage(entries, grace, NOW, [upload]) == []
    assert [g.key for g in incomplete_garbage(entries, grace, NOW)] == [f"backups/{old}/"]


def test_collect_garbage_reports_problems_and_goes_on(file_store):
    a = write_backup(file_store, NOW - timedelta(days=3), complete=False)
    b = write_backup(file_store, NOW - timedelta(days=2), complete=False)
    items = [
        Garbage("incomplete-backup", "backups/not-a-backup/", timedelta(days=9), "x"),
        Garbage("multipart-upload", "backups/x/y", timedelta(days=9), "x", upload_id="u"),
        Garbage("incomplete-backup", f"backups/{a}/", timedelta(days=3), "x"),
        Garbage("incomplete-backup", f"backups/{b}/", timedelta(days=2), "x"),
    ]
    # b finished in the meantime: it must be left alone.
    file_store.put_bytes(manifest_key(b), b"{}")
    problems = collect_garbage(Repository(file_store), items)
    assert len(problems) == 3
    assert "not a backup folder" in problems[0]
    assert "'u' is not a temporary file of 'backups/x/y'" in problems[1]
    assert "has a manifest now" in problems[2]
    assert not list(file_store.list(f"backups/{a}/"))
    assert file_store.exists(object_key(b, "acme", "prod"))


def test_damaged_backups_never_stand_in_for_intact_ones(file_store):
    ids = [write_backup(file_store, NOW - timedelta(days=900 - n)) for n in range(5)]
    for backup_id in ids[2:]:  # the newest three lose an object
        file_store.delete(object_key(backup_id, "acme", "prod"))
    repo = Repository(file_store)
    plan = plan_prune(repo, KeepConfig(daily_days=7, weekly_days=0), NOW)
    assert kept(plan) == set(ids[:2])  # min_keep: the intact ones, however old
    assert set(plan.to_delete) == set(ids[2:])
    damaged = [p for p in plan.problems if "is damaged" in p]
    assert len(damaged) == 3
    assert all("acme/prod.surql.zst is missing" in p for p in damaged)
    result = apply_prune(repo, plan, dry_run=False)
    assert sorted(result.deleted) == sorted(ids[2:])
    assert complete_ids(file_store) == set(ids[:2])


def test_deciding_as_of_a_later_time_never_collects_a_backup_being_written(file_store):
    wall = datetime.now(UTC)
    old = write_backup(file_store, wall - timedelta(days=29))
    recent = write_backup(file_store, wall - timedelta(days=1))
    writing = write_backup(file_store, wall, complete=False)  # its objects written just now
    repo = Repository(file_store)
    later = wall + timedelta(days=2)
    plan = plan_prune(repo, KeepConfig(weekly_days=0, min_keep=1), later)
    assert plan.to_delete == [old]  # the decisions are those of the later time
    assert plan.garbage == []  # but garbage is aged by the real clock
    assert apply_prune(repo, plan, dry_run=False).deleted == [old]
    assert file_store.exists(object_key(writing, "acme", "prod"))
    assert complete_ids(file_store) == {recent}


def test_folders_that_only_look_like_backups_are_never_collected(file_store):
    lookalikes = [
        f"backups/{new_backup_id(NOW - timedelta(days=9))}{tail}/x.bin"
        for tail in (
            "-keep-forever",
            "copy",
        )
    ]
    for key in lookalikes:
        file_store.put_bytes(key, b"an operator's own")
        set_age(file_store, key, NOW - timedelta(days=9))
    repo = Repository(file_store)
    plan = plan_prune(repo, KeepConfig(), NOW)
    assert plan.garbage == []
    assert sum("not a backup folder, ignored" in p for p in plan.problems) == 2
    apply_prune(repo, plan, dry_run=False)
    assert all(file_store.exists(key) for key in lookalikes)


# --- S3: the same through moto, stale multipart uploads, Object Lock -----------------------------


@pytest.fixture
def s3(s3_server, s3_bucket) -> Iterator[S3Store]:
    store = open_store(f"s3://{s3_bucket}/pfx", endpoint_url=s3_server, max_attempts=2)
    assert isinstance(store, S3Store)
    yield store
    store.close()


def test_s3_history_pruned_as_expected(s3):
    rng = random.Random(7)
    ids = set()
    for day in range(70):
        if rng.random() < 0.1:
            continue
        ids.add(write_backup(s3, NOW - timedelta(days=day, hours=rng.randrange(6))))
    failed = write_backup(s3, NOW - timedelta(days=5), complete=False)
    keep = KeepConfig(daily_days=14, weekly_days=28, monthly_days=60, min_keep=3)
    expected = expected_kept(ids, keep, NOW)
    repo = Repository(s3)
    plan = plan_prune(repo, keep, NOW)
    assert kept(plan) == expected
    # The objects were written just now: the failed backup is not garbage yet (S3 ages by
    # LastModified, which a test cannot set: `now` moves instead).
    assert plan.garbage == []
    result = apply_prune(repo, plan, dry_run=False)
    assert result.problems == [] and set(result.deleted) == ids - expected
    assert complete_ids(s3) == expected
    later = find_garbage(repo, keep.incomplete_grace, datetime.now(UTC) + timedelta(hours=25))
    assert [g.key for g in later] == [f"backups/{failed}/"]
    assert collect_garbage(repo, later) == []
    assert not list(s3.list(f"backups/{failed}/"))


def test_stale_multipart_upload_is_aborted_after_the_grace_period(s3, s3_client, s3_bucket):
    backup_id = new_backup_id(NOW)
    key = f"backups/{backup_id}/acme/prod.surql.zst"
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key=f"pfx/{key}")
    # Outside the store's prefix: not ours.
    s3_client.create_multipart_upload(Bucket=s3_bucket, Key="other/file.bin")
    repo = Repository(s3)
    grace = timedelta(hours=24)
    # moto reports every upload as initiated 2010-11-10T20:48:33Z (a constant in its
    # responses): measure `now` from what the server says, as S3 would.
    (pending,) = s3.list_multipart_uploads()
    assert find_garbage(repo, grace, pending.initiated + timedelta(hours=23)) == []
    later = pending.initiated + timedelta(hours=25)
    garbage = find_garbage(repo, grace, later)
    assert [(g.kind, g.key, g.upload_id) for g in garbage] == [
        ("multipart-upload", key, upload["UploadId"])
    ]
    plan = plan_prune(repo, KeepConfig(incomplete_grace=grace), later)
    assert plan.garbage == garbage
    assert (
        prune_report(apply_prune(repo, plan, dry_run=True))["garbage"][0]["upload_id"]
        == (upload["UploadId"])
    )
    assert len(s3.list_multipart_uploads()) == 1  # the dry run left it
    assert apply_prune(repo, plan, dry_run=False).problems == []
    assert s3.list_multipart_uploads() == []
    others = s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads") or []
    assert [u["Key"] for u in others] == ["other/file.bin"]


def test_an_upload_that_started_long_ago_but_still_writes_parts_is_not_garbage(
    s3, s3_client, s3_bucket
):
    """A large database uploads for longer than the grace period: its age is its newest
    part's, so neither the upload nor its backup folder is collected while it runs."""
    backup_id = new_backup_id(NOW)
    done = f"backups/{backup_id}/spectron/metadata.surql.zst"
    s3_client.put_object(Bucket=s3_bucket, Key=f"pfx/{done}", Body=b"first database")
    key = f"backups/{backup_id}/acme/prod.surql.zst"
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key=f"pfx/{key}")
    s3_client.upload_part(
        Bucket=s3_bucket,
        Key=f"pfx/{key}",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"x" * 1024,
    )
    repo = Repository(s3)
    keep = KeepConfig(incomplete_grace=timedelta(hours=24))
    (pending,) = s3.list_multipart_uploads()
    assert datetime.now(UTC) - pending.initiated > timedelta(days=365)  # moto's constant
    # Now: the upload "started" years ago (as a long one did), but its part is seconds old.
    plan = plan_prune(repo, keep, datetime.now(UTC))
    assert plan.garbage == []
    assert apply_prune(repo, plan, dry_run=False).problems == []
    assert len(s3.list_multipart_uploads()) == 1 and s3.exists(done)
    # A day after its last part it is a stalled write: the upload and its folder go.
    later = datetime.now(UTC) + timedelta(hours=25)
    garbage = find_garbage(repo, keep.incomplete_grace, later)
    assert [(g.kind, g.key) for g in garbage] == [
        ("multipart-upload", key),
        ("incomplete-backup", f"backups/{backup_id}/"),
    ]
    assert "last part written" in garbage[0].detail


@pytest.fixture
def lock_bucket(s3_server, s3_bucket, s3_client) -> str:
    """A bucket with S3 Object Lock enabled (hence versioned), without default retention."""
    name = f"lock-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def test_moto_object_lock_facts(s3_server, lock_bucket, s3_client):
    """What S3 (moto) does with a locked object, the reason for asking before deleting: a
    plain delete succeeds and only hides it behind a delete marker; deleting the version is
    refused."""
    store = open_store(f"s3://{lock_bucket}/pfx", endpoint_url=s3_server)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    s3_client.put_object(
        Bucket=lock_bucket,
        Key="pfx/locked",
        Body=b"x",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )
    s3_client.put_object(
        Bucket=lock_bucket, Key="pfx/held", Body=b"x", ObjectLockLegalHoldStatus="ON"
    )
    store.put_bytes("free", b"x")
    assert store.lock_until("locked") == until
    assert store.lock_until("held") == datetime.max.replace(tzinfo=UTC)
    assert store.lock_until("free") is None and store.lock_until("missing") is None
    store.delete("locked")  # no error ...
    assert not store.exists("locked")  # ... the key is gone from view ...
    versions = s3_client.list_object_versions(Bucket=lock_bucket, Prefix="pfx/locked")
    assert (
        len(versions["Versions"]) == 1 and len(versions["DeleteMarkers"]) == 1
    )  # ... not the data
    with pytest.raises(s3_client.exceptions.ClientError, match="AccessDenied"):
        s3_client.delete_object(
            Bucket=lock_bucket, Key="pfx/locked", VersionId=versions["Versions"][0]["VersionId"]
        )
    assert FileStore("/nonexistent").lock_until("x") is None
    store.close()


def test_object_lock_keeps_backups_and_the_run_goes_on(s3_server, lock_bucket, s3_client):
    store = open_store(f"s3://{lock_bucket}/pfx", endpoint_url=s3_server)
    ids = [write_backup(store, NOW - timedelta(days=900 + 3 * n)) for n in range(6)]
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    # ids[3]: one object under retention (as a default retention would put it);
    # ids[4]: its manifest under a legal hold; ids[5]: free.
    s3_client.put_object_retention(
        Bucket=lock_bucket,
        Key=f"pfx/{object_key(ids[3], 'acme', 'prod')}",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )
    s3_client.put_object_legal_hold(
        Bucket=lock_bucket, Key=f"pfx/{manifest_key(ids[4])}", LegalHold={"Status": "ON"}
    )
    repo = Repository(store)
    plan = plan_prune(repo, KeepConfig(), NOW)
    assert plan.to_delete == ids[3:]
    dry = apply_prune(repo, plan, dry_run=True)
    assert dry.kept_by_lock == [ids[4], ids[3]]  # oldest first
    result = apply_prune(repo, plan, dry_run=False)
    assert result.problems == []
    assert result.deleted == [ids[5]]
    assert result.kept_by_lock == [ids[4], ids[3]]
    assert result.locked_until[ids[3]] == until
    report = prune_report(result)
    assert report["locked_until"] == {ids[3]: rfc3339(until), ids[4]: "legal hold"}
    # The locked backups are whole: their manifests were not touched.
    assert complete_ids(store) == {*ids[:3], ids[3], ids[4]}
    for backup_id in ids[3:5]:
        versions = s3_client.list_object_versions(
            Bucket=lock_bucket, Prefix=f"pfx/backups/{backup_id}/"
        )
        assert not versions.get("DeleteMarkers")
    store.close()


def test_default_retention_locks_every_new_backup(s3_server, s3_client):
    """The usual set-up: a bucket whose default retention locks every object written."""
    bucket = f"lock-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3_client.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    store = open_store(f"s3://{bucket}", endpoint_url=s3_server)
    ids = [write_backup(store, NOW - timedelta(days=900 + 3 * n)) for n in range(5)]
    repo = Repository(store)
    result = apply_prune(repo, plan_prune(repo, KeepConfig(), NOW), dry_run=False)
    assert result.deleted == [] and result.problems == []
    assert result.kept_by_lock == [ids[4], ids[3]]
    assert all(
        datetime.now(UTC) < until <= datetime.now(UTC) + timedelta(days=1, minutes=1)
        for until in result.locked_until.values()
    )
    assert complete_ids(store) == set(ids)
    store.close()


def test_a_crashed_write_s_temporary_file_is_collected_after_the_grace_period(file_store):
    """The file store's counterpart of a stale multipart upload: what a killed backup leaves."""
    done = write_backup(file_store, NOW - timedelta(days=2), complete=True)
    folder = file_store.root / "backups" / done
    stale = folder / ".spectron.surql.zst.tmp-0123456789ab"
    fresh = folder / ".other.surql.zst.tmp-ba9876543210"
    for path, age in ((stale, timedelta(hours=30)), (fresh, timedelta(hours=2))):
        path.write_bytes(b"half a dump")
        os.utime(path, ((NOW - age).timestamp(), (NOW - age).timestamp()))
    repo = Repository(file_store)

    garbage = find_garbage(repo, timedelta(hours=24), NOW)
    assert [(g.kind, g.key) for g in garbage] == [
        ("multipart-upload", f"backups/{done}/spectron.surql.zst")
    ]
    assert collect_garbage(repo, garbage) == []
    assert not stale.exists() and fresh.exists()
    assert repo.read_manifest(done).backup_id == done  # the complete backup is untouched
    assert find_garbage(repo, timedelta(hours=24), NOW) == []


# --- leases: a backup a restore or a drill is reading --------------------------------------------


@pytest.mark.parametrize("where", ["file_store", "s3"])
def test_a_backup_under_a_live_lease_is_kept_and_reported(where: str, request) -> None:
    store: Store = request.getfixturevalue(where)
    ids = [write_backup(store, NOW - timedelta(days=900 + 3 * n)) for n in range(5)]
    repo = Repository(store)
    plan = plan_prune(repo, KeepConfig(), NOW)
    assert plan.to_delete == ids[3:]
    with hold_lease(repo, ids[4], "restore") as hold:  # a restore --before reads the oldest
        dry = apply_prune(repo, plan, dry_run=True)
        assert dry.kept_in_use == [ids[4]] and dry.deleted == []
        result = apply_prune(repo, plan, dry_run=False)
        assert result.problems == []
        assert result.deleted == [ids[3]]
        assert result.kept_in_use == [ids[4]]
        assert complete_ids(store) == {*ids[:3], ids[4]}  # whole: its manifest too
        report = prune_report(result)
        assert prune_report(dry)["kept_in_use"] == report["kept_in_use"]
        [item] = report["kept_in_use"]
        assert item["backup_id"] == ids[4]
        [lease] = item["leases"]
        assert lease["purpose"] == "restore" and lease["host"] == socket.gethostname()
        assert lease["pid"] == os.getpid() and lease["key"] == hold.key
        assert lease["expires_at"] == rfc3339(hold.lease.expires_at) and lease["problem"] is None
        assert report["kept_by_lock"] == []
    # The restore ended: the next prune deletes it, with nothing left behind.
    again = apply_prune(repo, plan_prune(repo, KeepConfig(), NOW), dry_run=False)
    assert again.deleted == [ids[4]] and again.kept_in_use == [] and again.problems == []
    assert list(store.list(f"backups/{ids[4]}/")) == []


def test_an_expired_lease_protects_nothing(file_store):
    """A holder that died: its lease expires, and goes with its backup."""
    ids = [write_backup(file_store, NOW - timedelta(days=900 + 3 * n)) for n in range(4)]
    repo = Repository(file_store)
    wall = datetime.now(UTC)
    dead = lease_key(ids[3], new_lease_id(wall - timedelta(hours=3)))
    repo.write_json(
        dead,
        {
            "backup_id": ids[3],
            "purpose": "drill",
            "host": "gone",
            "pid": 1,
            "started_at": rfc3339(wall - timedelta(hours=3)),
            "expires_at": rfc3339(wall - timedelta(seconds=1)),
        },
    )
    result = apply_prune(repo, plan_prune(repo, KeepConfig(), NOW), dry_run=False)
    assert result.deleted == [ids[3]] and result.kept_in_use == [] and result.problems == []
    assert list(file_store.list(f"backups/{ids[3]}/")) == []


def test_an_unreadable_lease_keeps_its_backup_and_is_a_problem(file_store):
    ids = [write_backup(file_store, NOW - timedelta(days=900 + 3 * n)) for n in range(4)]
    broken = lease_key(ids[3], new_lease_id())
    file_store.put_bytes(broken, b"\xff half written")
    repo = Repository(file_store)
    plan = plan_prune(repo, KeepConfig(), NOW)
    assert plan.to_delete == [ids[3]] and plan.problems == []  # not damage, not unreadable
    result = apply_prune(repo, plan, dry_run=False)
    assert result.deleted == [] and result.kept_in_use == [ids[3]]
    [problem] = result.problems
    assert problem.startswith(f"backup {ids[3]}: kept, unreadable lease {broken} (")
    assert complete_ids(file_store) == set(ids)
    [lease] = prune_report(result)["kept_in_use"][0]["leases"]
    assert lease["key"] == broken and lease["problem"]
