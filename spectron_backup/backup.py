"""The backup of a whole Spectron instance: every database exported, compressed, checksummed
and uploaded as one stream, then the manifest, written last and only if all succeeded.

Per database the stages are one pipeline (export -> text encoding -> zstd on its own worker
threads -> [age encryption to the configured recipients] -> sha256 -> store writer), so a
database is never held whole in memory or on disk. The sha256 is of the stored bytes
(encrypted or not), so verifying a backup never needs a key.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

import spectron_backup
from spectron_backup.config import SourceConfig
from spectron_backup.discovery import DatabaseRef, Discovery, discover
from spectron_backup.dump.export import export_database
from spectron_backup.encryption import (
    AGE_FORMAT,
    AGE_SUFFIX,
    encrypting_writer,
    normalize_recipient,
    parse_recipients,
)
from spectron_backup.errors import OperationFailed, SpectronBackupError, UsageError
from spectron_backup.keyed_hashes import PLAIN, HashKey
from spectron_backup.manifest import (
    DatabaseEntry,
    Manifest,
    MissingContext,
    TableEntry,
    Tier,
    new_backup_id,
    rfc3339,
)
from spectron_backup.repository import DUMP_SUFFIX, Repository, object_key
from spectron_backup.stores.base import Store
from spectron_backup.streams import DEFAULT_ZSTD_LEVEL, CountingWriter, HashingWriter, zstd_writer
from spectron_backup.surreal import DatabaseNotFound, SurrealConnection

ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True)
class RemovedDuringBackup:
    """A Context's database that existed at discovery and was gone when its export began: the
    Context was deleted while the backup ran. That is not a failed backup (a rerun would
    succeed without it): the Context is recorded in the manifest's `missing_contexts`, as one
    whose database is missing at discovery is, and reported."""

    ref: DatabaseRef

    REASON = "database removed during the backup (after discovery)"

    @property
    def message(self) -> str:
        contexts = ", ".join([self.ref.context or "", *self.ref.shared_with])
        return f"Context {contexts}: {self.ref.name} was removed during the backup; not backed up"


def backup_database(
    source: AbstractContextManager[SurrealConnection],
    store: Store,
    backup_id: str,
    ref: DatabaseRef,
    *,
    compression_level: int = DEFAULT_ZSTD_LEVEL,
    recipients: Sequence[str] = (),
    progress: ProgressCallback | None = None,
) -> DatabaseEntry | RemovedDuringBackup:
    """Export one database straight into a compressed, checksummed object in the store;
    with `recipients` (age or SSH public keys) the compressed dump is encrypted to them.
    A Context database removed since discovery leaves no object and gives
    `RemovedDuringBackup`; a control-plane database that is gone is an error.

    `source` is entered for the export only (`SourceConnections.exclusive()`, or
    `nullcontext(conn)`): the last compressed bytes, the last parts and the store's completion
    of the object then run while the next database exports."""
    keys = [normalize_recipient(r) for r in recipients]
    encrypt_to = parse_recipients(keys)
    hash_key = HashKey.new() if encrypt_to else PLAIN
    key = object_key(backup_id, ref.ns, ref.db, DUMP_SUFFIX + (AGE_SUFFIX if keys else ""))
    started = time.perf_counter()
    try:
        with store.writer(key) as sink, ExitStack() as stages:
            hashed = HashingWriter(sink)
            stored: io.RawIOBase = hashed
            if encrypt_to:
                stored = stages.enter_context(encrypting_writer(hashed, encrypt_to))
            with zstd_writer(stored, compression_level) as plain, source as conn:
                summary = export_database(conn, ref.ns, ref.db, plain, progress=progress)
            raw: CountingWriter = plain.raw  # type: ignore[assignment]
            stages.close()  # the last encrypted chunk, before the digest is read
            sink.metadata["sha256"] = hashed.hexdigest()
            sink.metadata["raw-bytes"] = str(raw.bytes)
            if encrypt_to:
                sink.metadata["encryption"] = AGE_FORMAT
    except DatabaseNotFound as exc:  # the store's writer has dropped what it had written
        if ref.role == "context":
            return RemovedDuringBackup(ref)
        raise UsageError(f"{ref.name}: {exc}") from exc
    except SpectronBackupError as exc:
        raise type(exc)(f"{ref.name}: {exc}") from exc
    return DatabaseEntry(
        ns=ref.ns,
        db=ref.db,
        context=ref.context,
        shared_with=list(ref.shared_with),
        role=ref.role,
        key=key,
        bytes=hashed.bytes,
        raw_bytes=raw.bytes,
        sha256=hashed.hexdigest(),
        encrypted=bool(encrypt_to),
        recipients=keys,
        tables={
            name: TableEntry(count=t.count, hash=hash_key.apply(t.hash))
            for name, t in summary.tables.items()
        },
        records=summary.records,
        snapshot=summary.snapshot,
        snapshot_method=summary.snapshot_method,
        schema_hash=hash_key.apply(summary.schema_hash),
        hash_key=hash_key.sealed(encrypt_to),
        seconds=round(time.perf_counter() - started, 3),
        warnings=[*summary.warnings, *_shared_warning(ref)],
    )


def _shared_warning(ref: DatabaseRef) -> list[str]:
    if not ref.shared_with:
        return []
    return [f"also the database of Context {', '.join(ref.shared_with)}: backed up once"]


def choose_tiers(repo: Repository, now: datetime, requested: str | None) -> list[Tier]:
    """`daily`, plus `weekly` for the first complete backup of its ISO week (or on request)."""
    tiers: list[Tier] = ["daily"]
    if requested == "weekly":
        return ["daily", "weekly"]
    week = now.isocalendar()[:2]
    if not any(b.time.isocalendar()[:2] == week for b in repo.intact_backups()):
        tiers.append("weekly")
    return tiers


class BackupFailed(OperationFailed):
    """Some database could not be backed up; no manifest was written."""

    def __init__(self, backup_id: str, failures: list[str]) -> None:
        super().__init__(f"backup {backup_id} failed, no manifest written: " + "; ".join(failures))
        self.backup_id = backup_id
        self.failures = failures


class AfterBackupFailed(OperationFailed):
    """The backup is complete (its manifest is written), but a step after it failed."""

    def __init__(self, backup_id: str, step: str, cause: BaseException) -> None:
        super().__init__(
            f"backup {backup_id} is complete and restorable (its manifest is written), but "
            f"{step} failed afterwards: {cause}"
        )
        self.backup_id = backup_id


def stored_object_problems(store: Store, manifest: Manifest) -> list[str]:
    """What is wrong with the objects a manifest is about to vouch for: one is missing, of
    another size, or carries another sha256 (two databases written to one key; a stalled
    backup whose objects garbage collection took). One request per database."""
    written = Counter(d.key for d in manifest.databases)
    problems = [
        f"{key}: written by {n} databases of this backup"
        for key, n in sorted(written.items())
        if n > 1
    ]
    for database in manifest.databases:
        info = store.head(database.key)
        if info is None:
            problems.append(f"{database.ns}/{database.db}: {database.key} is gone")
        elif info.size != database.bytes:
            problems.append(
                f"{database.ns}/{database.db}: {database.key} is {info.size:,} bytes, "
                f"{database.bytes:,} were written"
            )
        elif info.metadata.get("sha256") != database.sha256:
            problems.append(
                f"{database.ns}/{database.db}: {database.key} carries another sha256 than "
                "the one written"
            )
    return problems


def write_checked_manifest(store: Store, manifest: Manifest) -> None:
    """Write the manifest, last, only if every object it lists is in the store as written:
    a manifest is the promise that the backup restores."""
    problems = stored_object_problems(store, manifest)
    if problems:
        raise BackupFailed(manifest.backup_id, problems)
    Repository(store).write_manifest(manifest)


def build_manifest(
    backup_id: str,
    started_at: datetime,
    tiers: list[Tier],
    engine_version: str,
    source: str,
    found: Discovery,
    results: Sequence[DatabaseEntry | RemovedDuringBackup],
) -> Manifest:
    """The manifest of the databases backed up; Contexts whose database was missing at
    discovery, or removed during the backup, go to `missing_contexts` with the reason."""
    removed = [
        MissingContext(context=context, ns=r.ref.ns, db=r.ref.db, reason=r.REASON)
        for r in results
        if isinstance(r, RemovedDuringBackup)
        for context in (r.ref.context or "", *r.ref.shared_with)
    ]
    return Manifest(
        backup_id=backup_id,
        started_at=rfc3339(started_at),
        finished_at=rfc3339(datetime.now(UTC)),
        tiers=tiers,
        tool_version=spectron_backup.__version__,
        engine_version=engine_version,
        source=source,
        databases=[r for r in results if isinstance(r, DatabaseEntry)],
        missing_contexts=[
            *(MissingContext(context=m.context or "", ns=m.ns, db=m.db) for m in found.missing),
            *removed,
        ],
    )


def backup_instance(
    conn: SurrealConnection,
    store: Store,
    source: SourceConfig,
    *,
    tiers: list[Tier] | None = None,
    compression_level: int = DEFAULT_ZSTD_LEVEL,
    recipients: Sequence[str] = (),
    started_at: datetime | None = None,
) -> Manifest:
    """The whole backup without Prefect, one database after the other (benchmarks, tests,
    scripts): discover, back up every database, write the manifest last. The flow `backup`
    composes the same steps as retried, parallel tasks."""
    started_at = started_at or datetime.now(UTC)
    found = discover(conn, source)
    backup_id = new_backup_id(started_at)
    results = [
        backup_database(
            nullcontext(conn),
            store,
            backup_id,
            ref,
            compression_level=compression_level,
            recipients=recipients,
        )
        for ref in found.databases
    ]
    manifest = build_manifest(
        backup_id,
        started_at,
        tiers or ["daily"],
        conn.engine_version(),
        conn.display_url,
        found,
        results,
    )
    write_checked_manifest(store, manifest)
    return manifest
