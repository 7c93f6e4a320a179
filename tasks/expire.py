"""Prefect tasks of the expire sweep: thin wrappers around `spectron_backup.sweep`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from spectron_backup.config import Config
from spectron_backup.discovery import DatabaseRef
from spectron_backup.manifest import new_backup_id
from spectron_backup.policies import PolicySet
from spectron_backup.source import SourceConnections
from spectron_backup.stores.base import Store
from spectron_backup.sweep import sweep_database
from tasks.retries import LONG_STEP_RETRIES, SHORT_STEP_RETRIES


@task(
    name="sweep-context",
    task_run_name="sweep {ref.ns}/{ref.db}",
    cache_policy=NONE,
    **LONG_STEP_RETRIES,  # a retry is safe: the sweep plans again from what is there now
)
def sweep_context(
    connections: SourceConnections,
    ref: DatabaseRef,
    policies: PolicySet,
    config: Config,
    now: datetime,
    dry_run: bool,
    force: bool,
) -> dict[str, Any]:
    logger = get_run_logger()
    with connections.exclusive() as conn:  # a new one on each retry when the last was lost
        report = sweep_database(
            conn,
            ref.ns,
            ref.db,
            policies,
            now=now,
            dry_run=dry_run,
            batch_size=config.sweep.batch_size,
            max_delete_fraction=config.sweep.max_delete_fraction,
            guard_allowance=config.sweep.guard_allowance,
            valid_until_grace=config.sweep.valid_until_grace,
            force=force,
            context=ref.context,
            tables=config.sweep.tables,
            fields=config.sweep.fields,
        )
    verb = "would delete" if dry_run else "deleted"
    logger.info(
        "%s: %s %d records, held %d entities, left %d changed during the sweep",
        ref.name,
        verb,
        report.total_deleted,
        report.held,
        report.changed,
    )
    for refusal in report.refused:
        logger.warning("%s: %s", ref.name, refusal.describe())
    return report.to_json()


@task(name="store-sweep-report", cache_policy=NONE, **SHORT_STEP_RETRIES)
def store_sweep_report(store: Store, report: dict[str, Any], dry_run: bool) -> str:
    """`sweeps/<wall clock>-<hex>[-dry-run].json`: the time the sweep ran (its `now`, which
    --now may set, is inside), unique, so no report ever replaces another."""
    stamp = new_backup_id() + ("-dry-run" if dry_run else "")  # time-sorted, unique
    key = f"sweeps/{stamp}.json"
    store.put_bytes(key, (json.dumps(report, indent=2, default=str) + "\n").encode())
    return key


@task(name="publish-sweep-report", cache_policy=NONE)
def publish_sweep_report(report: dict[str, Any]) -> None:
    rows = [
        {
            "context": database["context"],
            "table": item["table"],
            "category": item["category"],
            "reason": item["reason"],
            "policy": item["policy"],
            "records": item["count"],
            "sample ids": ", ".join(item["sample_ids"]),
        }
        for database in report["databases"]
        for item in database["deleted"]
    ]
    rows += [
        {
            "context": d["context"],
            "table": r["table"],
            "category": "",
            "reason": "REFUSED by the guard",
            "policy": "",
            "records": r["would_delete"],
            "sample ids": "",
        }
        for d in report["databases"]
        for r in d["refused"]
    ]
    title = "Expire sweep (dry run)" if report["dry_run"] else "Expire sweep"
    create_table_artifact(rows, key="spectron-expire-sweep", description=title)
