"""Restoring one database of a backup: download while hashing, verify, then import.

The object is spooled to a temporary file while its sha256 is computed, and nothing is
imported unless it matches the manifest: a corrupted backup must never half-restore. An
object encrypted with age is decrypted on the way into the spool, and nothing of it is
imported unless every one of its chunks authenticated as well.

The chosen backup is leased (`leased_backup`, spectron_backup.leases) until the restore ends,
so that a prune running meanwhile leaves it whole.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import zstandard

from spectron_backup.dump.importer import Importer, ImportSummary
from spectron_backup.dump.pages import table_digest
from spectron_backup.encryption import (
    AgeAuthenticationFailed,
    Identity,
    IdentityMismatch,
    NoMatchingIdentity,
    can_open,
    decrypt_to,
    public_keys,
)
from spectron_backup.errors import OperationFailed, UsageError
from spectron_backup.keyed_hashes import PLAIN, HashKey, open_hash_key
from spectron_backup.leases import LeaseHold, hold_lease
from spectron_backup.manifest import DatabaseEntry, Manifest
from spectron_backup.repository import Repository, newest_backup, why_not_latest
from spectron_backup.stores.base import Store
from spectron_backup.surreal import SurrealConnection


class ChecksumMismatch(OperationFailed):
    pass


NO_IDENTITY = (
    "no identity is configured: set encryption.identity (environment "
    "SPECTRON_BACKUP__ENCRYPTION__IDENTITY) or encryption.identity_block to the private key "
    "of one of them"
)


def identity_problem(
    backup_id: str, entries: Sequence[DatabaseEntry], identities: Sequence[Identity]
) -> str | None:
    """Why `identities` cannot open the encrypted ones of `entries`, naming the recipients
    the backup was encrypted to; None when they can (or when only decrypting can tell, with
    an SSH identity) or nothing is encrypted."""
    encrypted = [e for e in entries if e.encrypted]
    if not encrypted:
        return None
    recipients = list(dict.fromkeys(r for e in encrypted for r in e.recipients))
    to = f"backup {backup_id} is encrypted with age to {len(recipients)} recipient(s): {', '.join(recipients)}"
    if not identities:
        return f"{to}; {NO_IDENTITY}"
    if any(can_open(e.recipients, identities) is False for e in encrypted):
        mine = ", ".join(sorted(public_keys(identities)))
        return (
            f"{to}; the configured identity (public key {mine}) is none of them: give the "
            "private key of one of them in encryption.identity"
        )
    return None


def require_identity(
    backup_id: str, entries: Sequence[DatabaseEntry], identities: Sequence[Identity]
) -> None:
    """IdentityMismatch (exit status 2) unless `identities` can open these entries."""
    problem = identity_problem(backup_id, entries, identities)
    if problem:
        raise IdentityMismatch(problem)


class _HashingReader(io.RawIOBase):
    """Reads from `source`, keeping the sha256 of everything read."""

    def __init__(self, source: IO[bytes]) -> None:
        super().__init__()
        self._source = source
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        chunk = self._source.read(size if size is not None and size >= 0 else 1 << 20)
        self.sha.update(chunk)
        return chunk

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def fetch_verified(
    store: Store, entry: DatabaseEntry, identities: Sequence[Identity] = ()
) -> IO[bytes]:
    """The stored object's zstd stream in a temporary file, rewound, after its sha256
    matched the manifest; for an encrypted object, decrypted with `identities`, every chunk
    authenticated. IdentityMismatch (a UsageError) when no identity opens it."""
    name = f"{entry.ns}/{entry.db}"
    if entry.encrypted and not identities:
        raise IdentityMismatch(
            f"{name}: {entry.key} is encrypted with age to {', '.join(entry.recipients)}; "
            + NO_IDENTITY
        )
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned open to the caller
    problem: Exception | None = None
    try:
        with store.reader(entry.key) as source:
            hashed = _HashingReader(source)
            if entry.encrypted:
                try:
                    decrypt_to(hashed, spool, identities)
                except (NoMatchingIdentity, AgeAuthenticationFailed) as exc:
                    problem = exc
                hashed.drain()  # the rest, if any, for the sha256 of the whole object
            else:
                while chunk := hashed.read(1 << 20):
                    spool.write(chunk)
        digest = hashed.sha.hexdigest()
        if digest != entry.sha256:
            raise ChecksumMismatch(
                f"{name}: stored object {entry.key} has sha256 {digest}, "
                f"the manifest says {entry.sha256}: the backup is corrupted"
            )
        if isinstance(problem, NoMatchingIdentity):
            if can_open(entry.recipients, identities):
                raise AgeAuthenticationFailed(
                    f"{name}: stored object {entry.key} fails age authentication: its header "
                    "does not open with a key it was encrypted to, so it was changed after the "
                    "backup (and its sha256 in the manifest with it)"
                )
            recipients = ", ".join(entry.recipients)
            raise IdentityMismatch(
                f"{name}: no configured identity opens {entry.key}, encrypted with age to "
                f"{recipients}: give the private key of one of them in encryption.identity"
            )
        if problem is not None:
            raise AgeAuthenticationFailed(
                f"{name}: stored object {entry.key} fails age authentication ({problem}): it "
                "was changed after the backup (and its sha256 in the manifest with it)"
            )
        spool.seek(0)
        return spool
    except BaseException:
        spool.close()
        raise


def dump_text(compressed: IO[bytes]) -> io.TextIOWrapper:
    """A text stream of the dump inside a zstd object, decompressed as it is read."""
    reader = zstandard.ZstdDecompressor().stream_reader(
        compressed, read_across_frames=True, closefd=True
    )
    return io.TextIOWrapper(io.BufferedReader(reader, 1 << 20), encoding="utf-8", newline="")  # type: ignore[arg-type]


@dataclass
class TableMismatch:
    table: str
    expected_count: int
    restored_count: int
    hash_matches: bool

    def __str__(self) -> str:
        if self.expected_count != self.restored_count:
            return f"table {self.table}: {self.restored_count} records restored, the manifest says {self.expected_count}"
        return f"table {self.table}: content hash differs from the manifest"


@dataclass
class DatabaseRestore:
    entry: DatabaseEntry
    namespace: str
    database: str
    imported: ImportSummary
    download_seconds: float
    import_seconds: float
    mismatches: list[TableMismatch] = field(default_factory=list)
    #: how the entry's table hashes and schema fingerprint are written (see keyed_hashes)
    hash_key: HashKey = PLAIN

    @property
    def ok(self) -> bool:
        return self.imported.ok and not self.mismatches


def compare_with_manifest(
    conn: SurrealConnection, entry: DatabaseEntry, hash_key: HashKey = PLAIN
) -> list[TableMismatch]:
    """Every table's count and content hash in the restored database against the manifest."""
    mismatches = []
    for name, expected in sorted(entry.tables.items()):
        got = table_digest(conn, name)
        same_hash = hash_key.apply(got.hexdigest()) == expected.hash
        if got.count != expected.count or not same_hash:
            mismatches.append(TableMismatch(name, expected.count, got.count, same_hash))
    return mismatches


def restore_database(
    store: Store,
    entry: DatabaseEntry,
    conn: SurrealConnection,
    *,
    namespace: str | None = None,
    database: str | None = None,
    force: bool = False,
    verify: bool = True,
    identities: Sequence[Identity] = (),
) -> DatabaseRestore:
    """Restore one database of a backup into `conn` (by default under its own ns/db);
    `identities` decrypt an encrypted object."""
    ns, db = namespace or entry.ns, database or entry.db
    started = time.perf_counter()
    with fetch_verified(store, entry, identities) as compressed:
        downloaded = time.perf_counter()
        hash_key = open_hash_key(entry.hash_key, identities, f"{entry.ns}/{entry.db}")
        importer = Importer(conn, ns, db, force=force)
        importer.prepare_target()
        with dump_text(compressed) as text:
            imported = importer.import_file(text)
    imported_at = time.perf_counter()
    result = DatabaseRestore(
        entry, ns, db, imported, downloaded - started, imported_at - downloaded, hash_key=hash_key
    )
    if verify:
        conn.use(ns, db)
        result.mismatches = compare_with_manifest(conn, entry, hash_key)
    return result


def select_backup(
    repo: Repository,
    which: str | None = "latest",
    *,
    before: datetime | None = None,
    now: datetime | None = None,
) -> Manifest:
    """The manifest of the backup to restore: `latest`, a backup id, or the newest complete
    backup started before `before`. Incomplete backups are never chosen; and `latest` (or
    `--before`) refuses, rather than passing over, a newest backup that cannot be read or
    restored whole or is dated in the future: the operator chooses by id then."""
    entries = repo.backups()
    if before is not None or which in (None, "latest"):
        entry = newest_backup(entries, before=before)
        what = "latest" if before is None else f"--before {before:%Y-%m-%dT%H:%M:%SZ}"
        if entry is None:
            where = "" if before is None else f" started before {before:%Y-%m-%dT%H:%M:%SZ}"
            raise UsageError(
                f"no complete backup in {repo.store.url}{where}: run `spectron-backup list` "
                "to see what is there"
            )
        trouble = why_not_latest(entry, now or datetime.now(UTC))
        if trouble is not None:
            intact = newest_backup(entries, before=entry.time, intact=True)
            other = f" (the newest intact one before it is {intact.backup_id})" if intact else ""
            raise UsageError(
                f"{what} would be {entry.backup_id}, but {trouble}. Restore a backup by its "
                f"id{other}; `spectron-backup list` shows them"
            )
        return entry.manifest  # type: ignore[return-value]
    for entry in entries:
        if entry.backup_id == which:
            if entry.manifest is None or entry.problem:
                raise UsageError(
                    f"backup {which} cannot be restored: "
                    + (entry.problem or "it is incomplete (no manifest)")
                )
            return entry.manifest
    raise UsageError(
        f"backup {which} does not exist in {repo.store.url}: run `spectron-backup list` to see the backups"
    )


@contextmanager
def leased_backup(
    repo: Repository,
    which: str | None = "latest",
    *,
    before: datetime | None = None,
    now: datetime | None = None,
    **lease: Any,
) -> Iterator[tuple[Manifest, LeaseHold]]:
    """`select_backup`, then a restore lease on that backup until the block ends, so that a
    prune leaves it whole meanwhile. `lease` goes to `hold_lease` (ttl, refresh, clock).
    BackupGone when a prune deleted the backup between its choice and the lease; a lease
    that cannot be written is a warning of the hold (the restore goes on, unprotected)."""
    manifest = select_backup(repo, which, before=before, now=now)
    with hold_lease(repo, manifest.backup_id, "restore", **lease) as hold:
        yield manifest, hold


def select_databases(
    manifest: Manifest, *, context: str | None = None, database: str | None = None
) -> list[DatabaseEntry]:
    """All databases of a backup, or the one of a Context id, or one given as NS/DB."""
    if context is not None:
        chosen = [d for d in manifest.databases if context in (d.context, *d.shared_with)]
        if not chosen:
            known = ", ".join(sorted(d.context for d in manifest.databases if d.context)) or "none"
            raise UsageError(
                f"backup {manifest.backup_id} has no Context {context!r} (it has: {known})"
            )
        return chosen
    if database is not None:
        ns, _, db = database.partition("/")
        chosen = [d for d in manifest.databases if (d.ns, d.db) == (ns, db)]
        if not db or not chosen:
            known = ", ".join(f"{d.ns}/{d.db}" for d in manifest.databases)
            raise UsageError(
                f"backup {manifest.backup_id} has no database {database!r} (NS/DB; it has: {known})"
            )
        return chosen
    return list(manifest.databases)
