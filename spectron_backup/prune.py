"""Pruning the repository: plan (read only) then apply (delete), design section 5.

plan = plan_prune(repo, config.backups.keep, now)      # lists, reads manifests and drills
result = apply_prune(repo, plan, dry_run=True)          # changes nothing, checks locks
print(json.dumps(prune_report(result)))

The plan decides every complete backup with `retention.decide` and finds the garbage
(`garbage.find_garbage`). Backups whose manifest exists but cannot be read (or whose drill
records cannot be read, or that names another backup) are never deleted: they are listed
as `unreadable` and reported. A backup whose manifest lists an object that is missing or of
another size is damaged: reported, and decided like any other except that it counts for no
tier, no `min_keep` place and no drill (`retention.decide`), so it never stands in for an
intact backup and ages out as it would have.

`now` may be a later time, to see what a later run would do; garbage is aged by the earlier
of `now` and the wall clock, so that never collects a backup being written now.

Deleting a backup removes its manifest FIRST, then its other objects: if the deletion
stops half way, what remains is an incomplete backup (garbage, collected later), never a
complete backup with missing objects.

S3 Object Lock: a plain DeleteObject of a locked object does not fail, it adds a delete
marker (the bucket is versioned) and the locked version stays, hidden and billed. So before
deleting a backup, the lock of each of its objects is asked for (`Store.lock_until`): a backup
with any object still locked is left whole (its manifest too) and reported in `kept_by_lock`
with the date its last lock ends; the run does not fail. Locks are compared with the wall
clock (the one the server enforces), not with the plan's `now`.

Leases (spectron_backup.leases): a backup the plan deletes while a restore or a drill holds a
live lease on it is left whole too and reported in `kept_in_use` (which reader, on which
host, until when), in a dry run as well. Leases are read from the listing the deletion makes
anyway (no extra request unless the folder holds one); they are compared with the wall clock,
an expired lease protects nothing (it goes with its backup), and one that cannot be read
counts as live and is reported as a problem. A prune that listed a folder just before a
reader leased it still deletes it: that reader then fails on a missing object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from spectron_backup.config import KeepConfig
from spectron_backup.errors import SpectronBackupError
from spectron_backup.garbage import (
    Garbage,
    backup_folder,
    collect_garbage,
    incomplete_garbage,
    pending_uploads,
    upload_garbage,
)
from spectron_backup.leases import Lease, live_leases
from spectron_backup.manifest import rfc3339
from spectron_backup.repository import Repository, manifest_key
from spectron_backup.retention import BackupFacts, Decision, decide

__all__ = ["PrunePlan", "PruneResult", "apply_prune", "plan_prune", "prune_report"]

LEGAL_HOLD = datetime.max.replace(tzinfo=UTC)


@dataclass
class PrunePlan:
    decisions: list[Decision]
    """One per complete, readable backup, newest first."""
    garbage: list[Garbage]
    unreadable: list[str]
    """Ids of backups whose manifest (or a drill record) exists but cannot be read, or names
    another backup: never deleted; why is in `problems`."""
    problems: list[str] = field(default_factory=list)
    """What the plan could not read or ignored, one line each."""
    now: datetime | None = None

    @property
    def to_delete(self) -> list[str]:
        return [d.backup_id for d in self.decisions if d.action == "delete"]


@dataclass
class PruneResult:
    plan: PrunePlan
    deleted: list[str]
    """Backups whose manifest was deleted (in a dry run: none)."""
    kept_by_lock: list[str]
    """Backups the plan deletes but S3 Object Lock protects (also found in a dry run)."""
    problems: list[str]
    dry_run: bool
    locked_until: dict[str, datetime] = field(default_factory=dict)
    """For each backup in `kept_by_lock`: when its last lock ends (datetime.max: a legal
    hold)."""
    kept_in_use: list[str] = field(default_factory=list)
    """Backups the plan deletes but a restore or a drill holds a live lease on (also found
    in a dry run)."""
    leases: dict[str, list[Lease]] = field(default_factory=dict)
    """For each backup in `kept_in_use`: its live (or unreadable) leases."""


def _drill_passed(repo: Repository, keys: list[str]) -> bool:
    """Whether any of the drill records passed; OSError/ValueError/store errors propagate."""
    for key in reversed(keys):  # newest first: the usual case stops at the first read
        record = repo.read_json(key)
        if not isinstance(record, dict):
            raise ValueError(f"{key} is not a JSON object")
        if record.get("passed") is True:
            return True
    return False


def plan_prune(repo: Repository, keep: KeepConfig, now: datetime) -> PrunePlan:
    """What pruning would do at `now` (timezone-aware): reads only."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    now = now.astimezone(UTC)
    facts: list[BackupFacts] = []
    unreadable: list[str] = []
    problems: list[str] = []
    # Garbage is aged by the wall clock too: deciding "as if it were" a later time must not
    # collect a backup that is being written now.
    garbage_now = min(now, datetime.now(UTC))
    try:
        uploads = pending_uploads(repo, keep.incomplete_grace, garbage_now)
    except SpectronBackupError as exc:  # e.g. s3:ListBucketMultipartUploads not granted
        uploads = []
        problems.append(f"multipart uploads not checked: {exc}")
    entries = repo.backups(strays=True)
    for entry in entries:
        if not entry.is_backup_folder:
            problems.append(
                f"{backup_folder(entry.backup_id).rstrip('/')}: not a backup folder, ignored"
            )
            continue
        if not entry.has_manifest:
            continue  # incomplete: garbage collection's business
        if entry.manifest is None:
            unreadable.append(entry.backup_id)
            problems.append(
                f"backup {entry.backup_id}: manifest cannot be read, kept: {entry.problem}"
            )
            continue
        if entry.problem:
            unreadable.append(entry.backup_id)
            problems.append(f"{entry.problem}, kept")
            continue
        if entry.damage:
            problems.append(f"{entry.damage}: it counts for no tier, min_keep or drill")
        try:
            passed = _drill_passed(repo, entry.drills)
        except (SpectronBackupError, OSError, ValueError) as exc:
            unreadable.append(entry.backup_id)
            problems.append(f"backup {entry.backup_id}: a drill record cannot be read, kept: {exc}")
            continue
        facts.append(
            BackupFacts(
                backup_id=entry.backup_id,
                time=entry.time,
                tiers=frozenset(entry.manifest.tiers),
                drill_passed=passed,
                damage=entry.damage or "",
            )
        )
    garbage = upload_garbage(uploads, keep.incomplete_grace, garbage_now) + incomplete_garbage(
        entries, keep.incomplete_grace, garbage_now, uploads
    )
    return PrunePlan(
        decisions=decide(facts, keep, now),
        garbage=garbage,
        unreadable=unreadable,
        problems=problems,
        now=now,
    )


def apply_prune(repo: Repository, plan: PrunePlan, *, dry_run: bool) -> PruneResult:
    """Carry out `plan` (or, with `dry_run`, only check which deletions locks would stop).
    Never raises for a backup or an item of garbage that cannot be deleted: that is a
    problem of the result."""
    store = repo.store
    result = PruneResult(plan=plan, deleted=[], kept_by_lock=[], problems=[], dry_run=dry_run)
    wall_clock = datetime.now(UTC)
    for backup_id in reversed(plan.to_delete):  # oldest first
        folder = backup_folder(backup_id)
        manifest = manifest_key(backup_id)
        try:
            keys = [info.key for info in store.list(folder)]
            locks = [store.lock_until(key) for key in keys]
        except (SpectronBackupError, OSError) as exc:
            result.problems.append(f"backup {backup_id}: not deleted, cannot check it: {exc}")
            continue
        held = [until for until in locks if until is not None and until > wall_clock]
        if held:
            result.kept_by_lock.append(backup_id)
            result.locked_until[backup_id] = max(held)
        leases = live_leases(repo, keys, wall_clock)
        if leases:
            result.kept_in_use.append(backup_id)
            result.leases[backup_id] = leases
            result.problems.extend(
                f"backup {backup_id}: kept, {lease}: delete that object if no restore or drill "
                "holds it"
                for lease in leases
                if lease.problem
            )
        if held or leases:
            continue
        if dry_run:
            continue
        if manifest not in keys:
            result.problems.append(
                f"backup {backup_id}: its manifest is gone already; garbage collection will "
                "remove the rest"
            )
            continue
        try:
            store.delete(manifest)
        except (SpectronBackupError, OSError) as exc:
            result.problems.append(f"backup {backup_id}: not deleted: {exc}")
            continue
        result.deleted.append(backup_id)
        failed = []
        rest = [key for key in keys if key != manifest]
        for key in rest:
            try:
                store.delete(key)
            except (SpectronBackupError, OSError) as exc:
                failed.append(str(exc))
        if failed:
            result.problems.append(
                f"backup {backup_id}: manifest deleted, but {len(failed)} of {len(rest)} other "
                f"objects were not ({failed[0]}); garbage collection will remove them"
            )
    if not dry_run:
        result.problems.extend(collect_garbage(repo, plan.garbage))
    return result


def _moment(value: datetime) -> str:
    return "legal hold" if value == LEGAL_HOLD else rfc3339(value)


def prune_report(result: PruneResult) -> dict[str, Any]:
    """The result as JSON-able data (the `--json` output and the artifact's source)."""
    plan = result.plan
    return {
        "dry_run": result.dry_run,
        "now": rfc3339(plan.now) if plan.now else None,
        "decisions": [
            {"backup_id": d.backup_id, "action": d.action, "reasons": list(d.reasons)}
            for d in plan.decisions
        ],
        "garbage": [
            {
                "kind": g.kind,
                "key": g.key,
                "age_seconds": round(g.age.total_seconds()),
                "detail": g.detail,
                "upload_id": g.upload_id,
            }
            for g in plan.garbage
        ],
        "unreadable": list(plan.unreadable),
        "deleted": list(result.deleted),
        "kept_by_lock": list(result.kept_by_lock),
        "locked_until": {k: _moment(v) for k, v in result.locked_until.items()},
        "kept_in_use": [
            {"backup_id": backup_id, "leases": [x.summary() for x in result.leases[backup_id]]}
            for backup_id in result.kept_in_use
        ],
        "problems": [*plan.problems, *result.problems],
    }
