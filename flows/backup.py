"""The backup flow: discover -> back up every database (in parallel) -> manifest -> report."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from spectron_backup.backup import (
    AfterBackupFailed,
    BackupFailed,
    build_manifest,
)
from spectron_backup.config import load_config
from spectron_backup.manifest import new_backup_id
from spectron_backup.source import SourceConnections
from spectron_backup.stores import open_target_store
from tasks.backup import (
    announce_backup,
    backup_database_task,
    choose_backup_tiers,
    discover_databases,
    publish_backup_report,
    write_manifest,
)
from tasks.events import emit_spectron_event
from tasks.prune import prune_backups, publish_prune_report


@flow(name="backup", task_runner=ThreadPoolTaskRunner(max_workers=8))
def backup(
    config_path: str | None = None, tier: Literal["auto", "daily", "weekly"] = "auto"
) -> dict[str, Any]:
    """Back up every database of the Spectron instance; the manifest is written last.

    Args:
        config_path: Configuration file (YAML) on the worker; empty: $SPECTRON_BACKUP_CONFIG.
        tier: auto adds weekly to the first complete backup of an ISO week; daily or weekly
            choose it.
    """
    logger = get_run_logger()
    config = load_config(config_path)
    store = open_target_store(config.target)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    backup_id = new_backup_id(started_at)
    connections = SourceConnections(config)
    # The operator's retries for the steps that read the source: a server restarting or a
    # connection reset is retried, at discovery as in a database's export.
    retrying: dict[str, Any] = {
        "retries": config.backups.retries,
        "retry_delay_seconds": exponential_backoff(
            backoff_factor=config.backups.retry_delay_seconds
        ),
    }
    try:
        found, engine, source = discover_databases.with_options(**retrying)(connections, config)
        tiers = choose_backup_tiers(store, started_at, None if tier == "auto" else tier)
        backup_one = backup_database_task.with_options(**retrying)
        recipients = config.encryption.recipients
        if config.encryption.identity is not None:
            logger.warning(
                "encryption.identity is set where backups run: only restores and drills need "
                "the private key; the backup host should hold the recipients (public keys) only"
            )
        futures = [
            backup_one.submit(
                connections,
                store,
                backup_id,
                ref,
                config.backups.compression_level,
                recipients,
            )
            for ref in found.databases
        ]
        results, failures = [], []
        for ref, future in zip(found.databases, futures, strict=True):
            future.wait()
            if future.state.is_completed():
                results.append(future.result())
            else:
                cause = _cause(future)
                failures.append(cause if cause.startswith(ref.name) else f"{ref.name}: {cause}")
        if failures:
            raise BackupFailed(backup_id, failures)
        manifest = build_manifest(backup_id, started_at, tiers, engine, source, found, results)
        write_manifest(store, manifest)
    except Exception as exc:
        emit_spectron_event(
            "backup", "failed", {"backup_id": backup_id, "reason": str(exc)}, name=backup_id
        )
        raise
    finally:
        connections.close()
    # The backup exists from here on: what fails now is reported as that step's failure, never
    # as a failed backup (no spectron.backup.failed, and the completed event goes out first).
    seconds = time.perf_counter() - started
    announce_backup(manifest, store.url, seconds)
    step = "publishing its report"
    try:
        publish_backup_report(manifest, found, store.url, seconds)
        # Only after a successful backup: a failing backup must never thin out the good ones.
        step = "pruning old backups"
        pruned = prune_backups(store, config.backups.keep, datetime.now(UTC), False)
        publish_prune_report(pruned)
    except Exception as exc:
        raise AfterBackupFailed(backup_id, step, exc) from exc
    logger.info(
        "backup %s complete: %d databases, %.1f MB stored",
        backup_id,
        len(manifest.databases),
        manifest.bytes / 1e6,
    )
    return {
        **manifest.summary(),
        "pruned": list(pruned["deleted"]),
        "seconds": round(seconds, 3),
        "target": store.url,
        "missing_contexts": [m.context for m in manifest.missing_contexts],
        "missing": [m.model_dump() for m in manifest.missing_contexts],
        "warnings": found.unknown,
    }


def _cause(future: Any) -> str:
    try:
        future.result()
    except Exception as exc:
        return str(exc)
    return "unknown failure"
