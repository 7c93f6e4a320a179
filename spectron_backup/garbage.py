"""Garbage collection of the backup repository (design section 5).

Two kinds of garbage, both collected only after a grace period (`backups.keep.
incomplete_grace`, 24 hours by default):

* incomplete backups: folders `backups/<id>/` without a manifest (a failed or interrupted
  backup, or one whose deletion stopped after its manifest: prune deletes the manifest
  first). Their age is that of their NEWEST object, not the time in the id: a slow backup is
  still writing long after it started, and must not lose its first objects before its
  manifest is written. On S3 a multipart upload still pending inside the folder also counts
  as activity (a large database may take hours to upload and appears only at the end). Leases
  (`leases/`, spectron_backup.leases) are no activity and no protection here: a restore or a
  drill reads only complete backups (its holder re-checks the manifest after leasing), and a
  holder that keeps refreshing must not keep garbage forever. A folder holding nothing but
  leases (a holder that died after a prune took the rest) is aged by its newest lease;
* writes that never finished and have not written for longer than the grace period: on S3,
  multipart uploads under the store's prefix never completed or aborted (their parts are
  billed, invisible in listings), aged by their newest part; in a file store, the temporary
  files a killed write leaves (`.<name>.tmp-<hex>`, invisible to `list`), aged by their last
  modification. Both are `multipart-upload` garbage.

Folders under `backups/` whose name is not a backup id are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from spectron_backup.errors import SpectronBackupError
from spectron_backup.manifest import is_backup_id
from spectron_backup.repository import BACKUPS, MANIFEST, BackupEntry, Repository, manifest_key
from spectron_backup.stores.base import PendingUpload

__all__ = [
    "Garbage",
    "backup_folder",
    "collect_garbage",
    "find_garbage",
    "incomplete_garbage",
    "pending_uploads",
    "upload_garbage",
]


@dataclass(frozen=True)
class Garbage:
    kind: Literal["incomplete-backup", "multipart-upload"]
    key: str
    """The backup folder's prefix `backups/<id>/`, or the key of the upload's object."""
    age: timedelta
    detail: str
    upload_id: str | None = None


def backup_folder(backup_id: str) -> str:
    return f"{BACKUPS}{backup_id}/"


def pending_uploads(repo: Repository, grace: timedelta, now: datetime) -> list[PendingUpload]:
    """The store's pending multipart uploads (S3) or temporary files, [] for stores without
    them. An upload that started more than `grace` before `now` may still be running (a large
    database uploads for hours): on S3 such an upload is asked when it last wrote a part
    (`active_at`), and one that finished meanwhile is left out."""
    lister = getattr(repo.store, "list_multipart_uploads", None)
    if not callable(lister):
        return []
    activity = getattr(repo.store, "upload_activity", None)
    now = _utc(now)
    found = []
    for upload in lister():
        if callable(activity) and now - upload.initiated > grace:
            upload = activity(upload)
            if upload is None:
                continue
        found.append(upload)
    return found


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    return now.astimezone(UTC)


def incomplete_garbage(
    entries: Iterable[BackupEntry],
    grace: timedelta,
    now: datetime,
    uploads: Iterable = (),
) -> list[Garbage]:
    """The incomplete backups among `entries` (from `Repository.backups`) older than `grace`;
    `uploads` are the store's pending multipart uploads (activity in a folder)."""
    now = _utc(now)
    activity: dict[str, datetime] = {}
    for upload in uploads:
        if upload.key.startswith(BACKUPS):
            backup_id = upload.key[len(BACKUPS) :].split("/", 1)[0]
            activity[backup_id] = max(activity.get(backup_id, upload.active_at), upload.active_at)
    found = []
    for entry in entries:
        if not entry.is_backup_folder or entry.has_manifest:
            continue
        newest = entry.last_modified or max((o.modified for o in entry.leases), default=None)
        if newest is None:
            continue  # an empty folder: nothing to collect
        last = max(newest, activity.get(entry.backup_id, newest))
        age = now - last
        if age <= grace:
            continue
        n, leases = len(entry.objects), len(entry.leases)
        detail = (
            f"{n} object{'s' if n != 1 else ''}"
            + (f" and {leases} lease{'s' if leases != 1 else ''}" if leases else "")
            + f", no {MANIFEST}; newest written {last:%Y-%m-%dT%H:%M:%SZ}"
        )
        found.append(Garbage("incomplete-backup", backup_folder(entry.backup_id), age, detail))
    return found


def upload_garbage(uploads: Iterable, grace: timedelta, now: datetime) -> list[Garbage]:
    """The multipart uploads among `uploads` that last wrote longer than `grace` before `now`."""
    now = _utc(now)
    found = []
    for upload in uploads:
        age = now - upload.active_at
        if age > grace:
            last = (
                f", last part written {upload.last_written:%Y-%m-%dT%H:%M:%SZ}"
                if upload.last_written
                else ""
            )
            found.append(
                Garbage(
                    "multipart-upload",
                    upload.key,
                    age,
                    f"upload {upload.upload_id} started {upload.initiated:%Y-%m-%dT%H:%M:%SZ}"
                    f"{last}, never completed",
                    upload_id=upload.upload_id,
                )
            )
    return found


def find_garbage(repo: Repository, grace: timedelta, now: datetime) -> list[Garbage]:
    """Incomplete backups and (on S3) stale multipart uploads older than `grace`: the
    multipart uploads first, then the backup folders oldest first. Changes nothing."""
    uploads = pending_uploads(repo, grace, now)
    entries = repo.backups(load_manifests=False)
    return upload_garbage(uploads, grace, now) + incomplete_garbage(entries, grace, now, uploads)


def collect_garbage(repo: Repository, items: list[Garbage]) -> list[str]:
    """Delete `items` (from `find_garbage`); the problems met, one line each. A failing item
    never stops the others. A folder that has gained a manifest since it was found is left
    alone (its backup finished after all)."""
    store = repo.store
    problems: list[str] = []
    for item in items:
        try:
            if item.kind == "multipart-upload":
                abort = getattr(store, "abort_multipart_upload", None)
                if abort is None or item.upload_id is None:
                    problems.append(f"{item.key}: cannot abort a multipart upload on {store.url}")
                    continue
                abort(item.key, item.upload_id)
                continue
            backup_id = item.key[len(BACKUPS) :].rstrip("/")
            if (
                not item.key.startswith(BACKUPS)
                or not is_backup_id(backup_id)
                or item.key != backup_folder(backup_id)
            ):
                problems.append(f"{item.key}: not a backup folder, left alone")
                continue
            if store.exists(manifest_key(backup_id)):
                problems.append(f"{item.key}: has a manifest now (the backup finished), left alone")
                continue
            objects = list(store.list(item.key))
            failed: list[str] = []
            for info in objects:
                try:
                    store.delete(info.key)
                except (SpectronBackupError, OSError) as exc:
                    failed.append(str(exc))
            if failed:
                problems.append(
                    f"{item.key}: {len(failed)} of {len(objects)} objects could not be "
                    f"deleted: {failed[0]}"
                )
        except (SpectronBackupError, OSError) as exc:
            problems.append(f"{item.key}: garbage collection failed: {exc}")
    return problems
