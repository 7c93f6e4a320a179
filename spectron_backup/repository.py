"""The backup repository: the layout of design section 4 on top of a Store.

    backups/<backup_id>/<ns>/<db>.surql.zst      one object per database
                                 (.surql.zst.age when encrypted with age)
    backups/<backup_id>/manifest.json            written last; its presence = complete
    backups/<backup_id>/drills/<timestamp>.json  one record per restore drill

Like restic's repository over its backend: the store moves bytes, this knows what they mean.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from spectron_backup.errors import OperationFailed
from spectron_backup.manifest import Manifest, backup_time
from spectron_backup.stores.base import ObjectInfo, Store

BACKUPS = "backups/"
MANIFEST = "manifest.json"
DRILLS = "drills/"
#: a database's dump, zstd-compressed; encrypted objects add `.age` (encryption.AGE_SUFFIX)
DUMP_SUFFIX = ".surql.zst"


def object_key(backup_id: str, ns: str, db: str, suffix: str = DUMP_SUFFIX) -> str:
    return f"{BACKUPS}{backup_id}/{ns}/{db}{suffix}"


def manifest_key(backup_id: str) -> str:
    return f"{BACKUPS}{backup_id}/{MANIFEST}"


@dataclass
class BackupEntry:
    backup_id: str
    objects: list[ObjectInfo] = field(default_factory=list)
    manifest: Manifest | None = None
    #: drill record keys, oldest first
    drills: list[str] = field(default_factory=list)
    problem: str | None = None  # a manifest that exists but cannot be read

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    @property
    def time(self) -> datetime:
        return backup_time(self.backup_id)

    @property
    def stored_bytes(self) -> int:
        return sum(o.size for o in self.objects)

    @property
    def last_modified(self) -> datetime | None:
        return max((o.modified for o in self.objects), default=None)


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

    def backups(self, *, load_manifests: bool = True) -> list[BackupEntry]:
        """Every backup under the prefix, oldest first, complete or not."""
        entries = []
        for backup_id, objects in self._group():
            entry = BackupEntry(backup_id, objects)
            names = {o.key[len(BACKUPS) + len(backup_id) + 1 :] for o in objects}
            entry.drills = sorted(
                f"{BACKUPS}{backup_id}/{n}" for n in names if n.startswith(DRILLS)
            )
            if MANIFEST in names and load_manifests:
                try:
                    entry.manifest = self.read_manifest(backup_id)
                except OperationFailed as exc:
                    entry.problem = str(exc)
            entries.append(entry)
        return entries

    def complete_backups(self) -> list[BackupEntry]:
        return [b for b in self.backups() if b.complete]

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
        self.store.put_bytes(key, (json.dumps(record, indent=2, default=str) + "\n").encode())
        return key

    def read_json(self, key: str) -> dict[str, Any]:
        return json.loads(self.store.get_bytes(key))
