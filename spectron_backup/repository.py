"""The backup repository: the layout of design section 4 on top of a Store.

    backups/<backup_id>/<ns>/<db>.surql.zst      one object per database
                                 (.surql.zst.age when encrypted with age)
    backups/<backup_id>/manifest.json            written last; its presence = complete
    backups/<backup_id>/drills/<timestamp>.json  one record per restore drill
    backups/<backup_id>/leases/<lease_id>.json   a restore or drill reading it (leases.py)

Like restic's repository over its backend: the store moves bytes, this knows what they mean.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from spectron_backup.errors import OperationFailed
from spectron_backup.manifest import Manifest, backup_time, is_backup_id
from spectron_backup.stores.base import ObjectInfo, Store

BACKUPS = "backups/"
MANIFEST = "manifest.json"
DRILLS = "drills/"
#: leases of the readers of a backup (spectron_backup.leases): not part of the backup
LEASES = "leases/"
#: a database's dump, zstd-compressed; encrypted objects add `.age` (encryption.AGE_SUFFIX)
DUMP_SUFFIX = ".surql.zst"


def object_key(backup_id: str, ns: str, db: str, suffix: str = DUMP_SUFFIX) -> str:
    return f"{BACKUPS}{backup_id}/{ns}/{db}{suffix}"


def manifest_key(backup_id: str) -> str:
    return f"{BACKUPS}{backup_id}/{MANIFEST}"


@dataclass
class BackupEntry:
    backup_id: str
    #: the backup's own objects (dumps, manifest, drill records), never its leases
    objects: list[ObjectInfo] = field(default_factory=list)
    manifest: Manifest | None = None
    #: drill record keys, oldest first
    drills: list[str] = field(default_factory=list)
    #: why a manifest that exists cannot be trusted at all: it cannot be read, or it names
    #: another backup (nothing is known about such a backup: it is kept and reported)
    problem: str | None = None
    #: why a readable manifest does not match the objects present: one it lists is missing
    #: or of another size (the backup cannot be restored whole)
    damage: str | None = None
    #: lease objects in the folder (`leases/`), live or expired: kept apart from `objects`,
    #: so that they count for no size, drill, damage or activity of the backup
    leases: list[ObjectInfo] = field(default_factory=list)

    @property
    def is_backup_folder(self) -> bool:
        """A real backup folder: a backup id, with objects inside it (not an operator's own
        folder, nor a stray object `backups/<name>` directly under backups/)."""
        folder = f"{BACKUPS}{self.backup_id}/"
        return is_backup_id(self.backup_id) and all(
            o.key.startswith(folder) for o in self.objects + self.leases
        )

    @property
    def has_manifest(self) -> bool:
        """Whether the folder holds a manifest object (readable or not)."""
        return any(o.key == manifest_key(self.backup_id) for o in self.objects)

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    @property
    def intact(self) -> bool:
        """Complete, its manifest its own, and every object it lists present at its size:
        the only kind of backup that restores, counts for retention or starts a week."""
        return self.manifest is not None and self.problem is None and self.damage is None

    @property
    def trouble(self) -> str | None:
        return self.problem or self.damage

    @property
    def time(self) -> datetime:
        return backup_time(self.backup_id)

    @property
    def stored_bytes(self) -> int:
        return sum(o.size for o in self.objects)

    @property
    def last_modified(self) -> datetime | None:
        return max((o.modified for o in self.objects), default=None)

    def check_objects(self) -> None:
        """Set `problem` / `damage` from the manifest against the objects listed."""
        manifest = self.manifest
        if manifest is None:
            return
        if manifest.backup_id != self.backup_id:
            self.problem = (
                f"backup {self.backup_id}: its manifest names backup {manifest.backup_id}"
            )
            return
        sizes = {o.key: o.size for o in self.objects}
        found = []
        for database in manifest.databases:
            size = sizes.get(database.key)
            if size is None:
                found.append(f"{database.key} is missing")
            elif size != database.bytes:
                found.append(
                    f"{database.key} is {size:,} bytes, the manifest says {database.bytes:,}"
                )
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            self.damage = f"backup {self.backup_id} is damaged: {found[0]}{more}"


#: How far after now a backup's time may be before it is taken for clock skew: the host that
#: took it and the one reading it may disagree by this much.
CLOCK_TOLERANCE = timedelta(minutes=15)


def newest_backup(
    entries: list[BackupEntry], *, before: datetime | None = None, intact: bool = False
) -> BackupEntry | None:
    """The newest backup (started before `before`) whose folder holds a manifest, readable or
    not: `latest` means that one, not the newest that happens to be readable; with `intact`,
    the newest intact one."""
    for entry in reversed(entries):
        if before is not None and entry.time >= before:
            continue
        if entry.intact if intact else entry.has_manifest:
            return entry
    return None


def why_not_latest(entry: BackupEntry, now: datetime, *, whole: bool = True) -> str | None:
    """Why `entry`, the newest backup, must not silently stand for `latest`: its manifest
    cannot be read or is another backup's; with `whole`, an object it lists is missing or of
    another size (a drill leaves that to its per-database checks, which say more); or it is
    dated after `now` (a skewed clock took it, or is reading it: it may not be the newest)."""
    if entry.manifest is None:
        return f"backup {entry.backup_id}: its manifest cannot be read: {entry.problem}"
    if entry.problem or (whole and entry.damage):
        return entry.trouble
    if entry.time > now + CLOCK_TOLERANCE:
        return (
            f"backup {entry.backup_id} is dated {entry.time - now} after now: the clock of the "
            "host that took it, or of this one, is wrong"
        )
    return None


class Repository:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _group(self) -> Iterator[tuple[str, list[ObjectInfo]]]:
        current: str | None = None
        objects: list[ObjectInfo] = []
        for info in self.store.list(BACKUPS):
            backup_id = info.key[len(BACKUPS) :].split("/", 1)[0]
            if backup_id != current:
                if current is not None:
                    yield current, objects
                current, objects = backup_id, []
            objects.append(info)
        if current is not None:
            yield current, objects

    def backups(self, *, load_manifests: bool = True, strays: bool = False) -> list[BackupEntry]:
        """Every backup under the prefix, oldest first, complete or not; with `strays`, also
        what is under backups/ without being a backup folder (for reporting it)."""
        entries = []
        for backup_id, objects in self._group():
            leases = f"{BACKUPS}{backup_id}/{LEASES}"
            entry = BackupEntry(
                backup_id,
                [o for o in objects if not o.key.startswith(leases)],
                leases=[o for o in objects if o.key.startswith(leases)],
            )
            if not entry.is_backup_folder:
                if strays:
                    entries.append(entry)
                continue
            names = {o.key[len(BACKUPS) + len(backup_id) + 1 :] for o in entry.objects}
            entry.drills = sorted(
                f"{BACKUPS}{backup_id}/{n}" for n in names if n.startswith(DRILLS)
            )
            if MANIFEST in names and load_manifests:
                try:
                    entry.manifest = self.read_manifest(backup_id)
                except OperationFailed as exc:
                    entry.problem = str(exc)
                entry.check_objects()
            entries.append(entry)
        return entries

    def intact_backups(self) -> list[BackupEntry]:
        return [b for b in self.backups() if b.intact]

    def read_manifest(self, backup_id: str) -> Manifest:
        data = self.store.get_bytes(manifest_key(backup_id))
        try:
            return Manifest.model_validate_json(data)
        except ValidationError as exc:
            raise OperationFailed(
                f"backup {backup_id}: manifest.json is not a valid manifest: {exc.errors()[0]['msg']}"
            ) from None

    def write_manifest(self, manifest: Manifest) -> None:
        self.store.put_bytes(
            manifest_key(manifest.backup_id),
            manifest.to_json_bytes(),
            metadata={"content-type": "application/json"},
        )

    def write_drill(self, backup_id: str, timestamp: str, record: dict[str, Any]) -> str:
        key = f"{BACKUPS}{backup_id}/{DRILLS}{timestamp}.json"
        self.write_json(key, record)
        return key

    def write_json(self, key: str, record: dict[str, Any]) -> None:
        self.store.put_bytes(key, (json.dumps(record, indent=2, default=str) + "\n").encode())

    def read_json(self, key: str) -> dict[str, Any]:
        return json.loads(self.store.get_bytes(key))
