"""Prefect tasks of the backup flow: thin wrappers around `spectron_backup.backup`."""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from spectron_backup.backup import (
    RemovedDuringBackup,
    backup_database,
    choose_tiers,
    write_checked_manifest,
)
from spectron_backup.config import Config
from spectron_backup.discovery import DatabaseRef, Discovery, discover
from spectron_backup.encryption import short_key
from spectron_backup.manifest import DatabaseEntry, Manifest, Tier
from spectron_backup.repository import Repository
from spectron_backup.source import SourceConnections
from spectron_backup.stores.base import Store
from tasks.events import emit_spectron_event
from tasks.retries import LONG_STEP_RETRIES, SHORT_STEP_RETRIES


@task(name="discover-databases", cache_policy=NONE, **SHORT_STEP_RETRIES)
def discover_databases(
    connections: SourceConnections, config: Config
) -> tuple[Discovery, str, str]:
    """Every database to back up, the engine version and the source's display URL."""
    conn = connections.open()
    found = discover(conn, config.source)
    logger = get_run_logger()
    logger.info("found %d databases to back up on %s", len(found.databases), conn.display_url)
    for problem in found.unknown:
        logger.warning(problem)
    for missing in found.missing:
        logger.warning(
            "Context %s names database %s, which does not exist: it is not backed up",
            missing.context,
            missing.name,
        )
    return found, conn.engine_version(), conn.display_url


@task(name="choose-tiers", cache_policy=NONE, **SHORT_STEP_RETRIES)
def choose_backup_tiers(store: Store, started_at: datetime, requested: str | None) -> list[Tier]:
    return choose_tiers(Repository(store), started_at, requested)


@task(
    name="backup-database",
    task_run_name="backup {ref.ns}/{ref.db}",
    cache_policy=NONE,
    **LONG_STEP_RETRIES,
)
def backup_database_task(
    connections: SourceConnections,
    store: Store,
    backup_id: str,
    ref: DatabaseRef,
    compression_level: int,
    recipients: list[str] | None = None,
) -> DatabaseEntry | RemovedDuringBackup:
    logger = get_run_logger()
    entry = backup_database(
        connections.exclusive(),
        store,
        backup_id,
        ref,
        compression_level=compression_level,
        recipients=recipients or [],
    )
    if isinstance(entry, RemovedDuringBackup):
        logger.warning(entry.message)
        return entry
    logger.info(
        "%s: %d records, %.1f MB -> %.1f MB%s in %.1fs, sha256 %s",
        ref.name,
        entry.records,
        entry.raw_bytes / 1e6,
        entry.bytes / 1e6,
        f" encrypted to {len(entry.recipients)} recipient(s)" if entry.encrypted else "",
        entry.seconds,
        entry.sha256,
    )
    for warning in entry.warnings:
        logger.warning(warning)
    return entry


# The manifest is what makes the backup exist: one retry more than the other short steps.
@task(name="write-manifest", cache_policy=NONE, **{**SHORT_STEP_RETRIES, "retries": 3})
def write_manifest(store: Store, manifest: Manifest) -> None:
    write_checked_manifest(store, manifest)


@task(name="publish-backup-report", cache_policy=NONE)
def publish_backup_report(
    manifest: Manifest, found: Discovery, target: str, seconds: float
) -> None:
    rows = [
        {
            "database": f"{d.ns}/{d.db}",
            "context": d.context or d.role,
            "records": d.records,
            "raw MB": round(d.raw_bytes / 1e6, 2),
            "stored MB": round(d.bytes / 1e6, 2),
            "ratio": round(d.raw_bytes / d.bytes, 1) if d.bytes else None,
            "seconds": d.seconds,
            "snapshot": d.snapshot,
            "encrypted": d.encrypted,
            "sha256": d.sha256,
        }
        for d in manifest.databases
    ]
    create_table_artifact(
        rows,
        key="spectron-backup-databases",
        description=f"Backup {manifest.backup_id}: one row per database",
    )
    lines = [
        f"# Backup {manifest.backup_id}",
        "",
        f"- **where**: `{target}` under `backups/{manifest.backup_id}/`",
        f"- **tiers**: {', '.join(manifest.tiers)}",
        f"- **databases**: {len(manifest.databases)}, **records**: {manifest.records:,}",
        f"- **size**: {manifest.raw_bytes / 1e6:,.1f} MB dumped, {manifest.bytes / 1e6:,.1f} MB stored",
        f"- **duration**: {seconds:.1f}s",
        "- **encryption**: "
        + (
            f"age, to {len(manifest.recipients)} recipient(s): "
            + ", ".join(f"`{short_key(r)}`" for r in manifest.recipients)
            if manifest.encrypted
            else "none (no `encryption.recipients` configured)"
        ),
    ]
    if manifest.missing_contexts:
        lines += ["", "## Contexts not backed up", ""]
        lines += [
            f"- `{m.context}` -> `{m.ns}/{m.db}`: {m.reason}" for m in manifest.missing_contexts
        ]
    warnings = [*found.unknown, *(w for d in manifest.databases for w in d.warnings)]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    create_markdown_artifact(
        "\n".join(lines), key="spectron-backup-summary", description="Backup summary"
    )


def announce_backup(manifest: Manifest, target: str, seconds: float) -> None:
    """The event `spectron.backup.completed`, which the "no backup in 26 hours" alert waits
    for: sent as soon as the manifest is written, before anything that could still fail."""
    emit_spectron_event(
        "backup",
        "completed",
        {
            "backup_id": manifest.backup_id,
            "bytes": manifest.bytes,
            "raw_bytes": manifest.raw_bytes,
            "records": manifest.records,
            "seconds": round(seconds, 3),
            "tiers": manifest.tiers,
            "target": target,
            "encrypted": manifest.encrypted,
            "recipients": manifest.recipients,
        },
        name=manifest.backup_id,
    )
