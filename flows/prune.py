"""The prune flow: retention pruning and garbage collection on their own (ad hoc)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow

from spectron_backup.config import load_config
from spectron_backup.durations import time_option
from spectron_backup.errors import OperationFailed
from spectron_backup.stores import open_target_store
from tasks.prune import prune_backups, publish_prune_report


@flow(name="prune")
def prune(
    config_path: str | None = None, dry_run: bool = False, now: str | None = None
) -> dict[str, Any]:
    """Apply `backups.keep` to the backup target: delete what no rule keeps, collect
    incomplete backups and stale multipart uploads older than `incomplete_grace`.

    Args:
        config_path: Configuration file (YAML) on the worker; empty: $SPECTRON_BACKUP_CONFIG.
        dry_run: Report the same decisions; delete nothing.
        now: Decide as if it were this time (RFC 3339), to see what a later run would do;
            empty: now.
    """
    config = load_config(config_path)
    moment = time_option(now, "now") or datetime.now(UTC)
    report = prune_backups(
        open_target_store(config.target, must_exist=True), config.backups.keep, moment, dry_run
    )
    publish_prune_report(report)
    if report["problems"] and not dry_run:
        raise OperationFailed("pruning could not finish: " + "; ".join(report["problems"][:5]))
    return report
