"""Prefect tasks of retention pruning: thin wrappers around `spectron_backup.prune`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from spectron_backup.config import KeepConfig
from spectron_backup.leases import in_use_by
from spectron_backup.prune import apply_prune, plan_prune, prune_report
from spectron_backup.repository import Repository
from spectron_backup.stores.base import Store
from tasks.retries import SHORT_STEP_RETRIES


@task(name="prune-backups", cache_policy=NONE, **SHORT_STEP_RETRIES)
def prune_backups(store: Store, keep: KeepConfig, now: datetime, dry_run: bool) -> dict[str, Any]:
    """Decide keep/delete for every complete backup, collect garbage, and (unless a dry
    run) carry it out. Returns the JSON report."""
    logger = get_run_logger()
    repo = Repository(store)
    result = apply_prune(repo, plan_prune(repo, keep, now), dry_run=dry_run)
    report = prune_report(result)
    verb = "would delete" if dry_run else "deleted"
    deleting = [d["backup_id"] for d in report["decisions"] if d["action"] == "delete"]
    logger.info(
        "retention: %d backups kept, %s %d; garbage: %d",
        len(report["decisions"]) - len(deleting),
        verb,
        len(deleting),
        len(report["garbage"]),
    )
    for backup_id in report["kept_by_lock"]:
        logger.warning("backup %s is past retention but kept by S3 Object Lock", backup_id)
    for item in report["kept_in_use"]:
        logger.warning(
            "backup %s is past retention but kept in use: %s",
            item["backup_id"],
            in_use_by(item["leases"]),
        )
    for problem in report["problems"]:
        logger.warning(problem)
    return report


@task(name="publish-prune-report", cache_policy=NONE)
def publish_prune_report(report: dict[str, Any]) -> None:
    in_use = {item["backup_id"]: in_use_by(item["leases"]) for item in report["kept_in_use"]}
    rows = []
    for d in report["decisions"]:
        row = {"backup": d["backup_id"], "action": d["action"], "reasons": "; ".join(d["reasons"])}
        if d["backup_id"] in report["kept_by_lock"]:
            row["action"] = "kept: locked"
            row["reasons"] += f"; S3 Object Lock until {report['locked_until'][d['backup_id']]}"
        if d["backup_id"] in in_use:  # past retention, but a restore or a drill reads it
            row["action"] = "kept: in use"
            row["reasons"] += f"; in use: {in_use[d['backup_id']]}"
        rows.append(row)
    rows += [
        {
            "backup": g["key"],
            "action": "delete" if not report["dry_run"] else "would delete",
            "reasons": f"garbage: {g['kind']}, {g['detail']}",
        }
        for g in report["garbage"]
    ]
    title = "Retention decisions (dry run)" if report["dry_run"] else "Retention decisions"
    create_table_artifact(rows, key="spectron-backup-retention", description=title)
