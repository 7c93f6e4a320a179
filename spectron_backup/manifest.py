"""The backup manifest (design section 4): written last, its presence marks a backup complete.

Its keys are an interface other tools read: add keys freely, never rename these.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT = 1
Tier = Literal["daily", "weekly", "monthly", "yearly"]


def new_backup_id(now: datetime | None = None) -> str:
    """`YYYYMMDDTHHMMSSZ-<6 hex>`: sorts by time, unique without coordination."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


#: What `new_backup_id` writes. Anything else under backups/ is not ours (a folder an
#: operator made, `20240101T000000Z-keep`), and garbage collection must never touch it.
BACKUP_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


def backup_time(backup_id: str) -> datetime:
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def is_backup_id(name: str) -> bool:
    """Whether `name` is exactly a backup id, with a real date."""
    if not BACKUP_ID.fullmatch(name):
        return False
    try:
        backup_time(name)
    except ValueError:
        return False
    return True


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TableEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    count: int
    hash: str


class DatabaseEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    ns: str
    db: str
    context: str | None = None
    #: other Context ids registered on this same database (backed up once, for all of them)
    shared_with: list[str] = Field(default_factory=list)
    role: str = "context"
    key: str  # relative to the target
    bytes: int  # stored (compressed) size
    raw_bytes: int  # dump size before compression
    sha256: str  # of the stored object
    compression: str = "zstd"
    #: encrypted with age after compression, to `recipients` (public keys, never a secret);
    #: `bytes` and `sha256` are then of the encrypted object, so verifying needs no key
    encrypted: bool = False
    recipients: list[str] = Field(default_factory=list)
    tables: dict[str, TableEntry] = Field(default_factory=dict)
    records: int = 0
    snapshot: bool = True
    snapshot_method: str = ""
    #: fingerprint of the schema (INFO FOR DB and every INFO FOR TABLE), see dump.schema
    schema_hash: str = ""
    #: encrypted entries: the key of their table hashes and schema fingerprint, encrypted to
    #: `recipients` (age, armored); those are then HMAC-SHA256 under it (see keyed_hashes)
    hash_key: str = ""
    seconds: float = 0.0
    warnings: list[str] = Field(default_factory=list)


class MissingContext(BaseModel):
    context: str
    ns: str
    db: str
    reason: str = "database does not exist"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    format: int = FORMAT
    backup_id: str
    started_at: str
    finished_at: str
    tiers: list[Tier]
    tool_version: str
    engine_version: str
    source: str = ""
    databases: list[DatabaseEntry]
    missing_contexts: list[MissingContext] = Field(default_factory=list)

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))

    @property
    def bytes(self) -> int:
        return sum(d.bytes for d in self.databases)

    @property
    def raw_bytes(self) -> int:
        return sum(d.raw_bytes for d in self.databases)

    @property
    def records(self) -> int:
        return sum(d.records for d in self.databases)

    @property
    def encrypted(self) -> bool:
        return any(d.encrypted for d in self.databases)

    @property
    def recipients(self) -> list[str]:
        """Every recipient any encrypted object of the backup was encrypted to, in order."""
        return list(dict.fromkeys(r for d in self.databases if d.encrypted for r in d.recipients))

    def to_json_bytes(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode("utf-8")

    def summary(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "started_at": self.started_at,
            "tiers": self.tiers,
            "databases": len(self.databases),
            "records": self.records,
            "bytes": self.bytes,
            "raw_bytes": self.raw_bytes,
            "encrypted": self.encrypted,
            "recipients": self.recipients,
        }
