"""Prefect tasks of the restore drill: thin wrappers around `spectron_backup.drill`, the
report's artifacts and events, and the flow's failure hook (tasks/alerts.py) that posts the
webhook alert."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from pydantic import SecretStr

from spectron_backup.alerts import drill_alert_title
from spectron_backup.config import DrillConfig
from spectron_backup.drill import DrillReport, choose_backup, run_drill, write_drill_record
from spectron_backup.encryption import identities_of
from spectron_backup.manifest import Manifest
from spectron_backup.repository import Repository
from spectron_backup.stores.base import Store
from spectron_backup.surreal import Credentials
from tasks.alerts import webhook_alert_hook
from tasks.events import emit_spectron_event
from tasks.markdown import md_text
from tasks.retries import SHORT_STEP_RETRIES

SUMMARY_KEY = "spectron-drill-summary"
CHECKS_KEY = "spectron-drill-checks"


@task(name="choose-backup", cache_policy=NONE, **SHORT_STEP_RETRIES)
def choose_drill_backup(
    store: Store, drill: DrillConfig, which: str | None, now: datetime
) -> Manifest:
    manifest = choose_backup(
        Repository(store), drill.selection, drill.window_days, which, now, random.Random()
    )
    get_run_logger().info(
        "drilling backup %s (%d databases, %d records)",
        manifest.backup_id,
        len(manifest.databases),
        manifest.records,
    )
    return manifest


@task(name="restore-and-validate", cache_policy=NONE)
def run_drill_task(
    store: Store,
    manifest: Manifest,
    scratch_url: str | None,
    documents: Store | None,
    keep_scratch: bool,
    now: datetime,
    identity: SecretStr | None = None,
    credentials: Credentials | None = None,
) -> DrillReport:
    """Restore every database into the scratch SurrealDB and validate it. Problems of the
    backup are failed checks in the report, not exceptions. `identity` (a secret) decrypts
    an encrypted backup."""
    logger = get_run_logger()
    report = run_drill(
        store,
        manifest,
        scratch_url=scratch_url,
        documents=documents,
        keep_scratch=keep_scratch,
        now=now,
        identities=identities_of(identity),
        scratch_credentials=credentials,
    )
    for database in report.databases:
        logger.info(
            "%s: %d records restored in %.2fs (download %.2fs), validated in %.2fs: %s",
            database.name,
            database.records,
            database.restore_seconds,
            database.download_seconds,
            database.validation_seconds,
            "passed" if database.passed else "FAILED",
        )
    for failure in report.failures:
        logger.warning(failure)
    for warning in report.warnings:  # e.g. its lease could not be written
        logger.warning(warning)
    if report.kept_scratch:
        logger.info("scratch kept for debugging: %s", report.kept_scratch)
    return report


@task(name="write-drill-record", cache_policy=NONE, **SHORT_STEP_RETRIES)
def write_drill_record_task(store: Store, report: DrillReport) -> str:
    return write_drill_record(Repository(store), report)


def _minutes(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds:.1f}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h {rest // 60:02d}m" if hours else f"{rest // 60}m {rest % 60:02d}s"


@task(name="publish-drill-report", cache_policy=NONE)
def publish_drill_report(report: DrillReport, record_key: str | None) -> None:
    rows = [
        {
            "database": c.database,
            "table": c.table or "",
            "check": c.check,
            "passed": c.passed,
            "detail": c.detail,
            "failing ids": ", ".join(c.failing_ids[:10]),
        }
        for c in sorted(report.checks, key=lambda c: c.passed)  # failures first
    ]
    create_table_artifact(
        rows,
        key=CHECKS_KEY,
        description=f"Restore drill of backup {report.backup_id}: every check",
    )
    verdict = "PASSED" if report.passed else "FAILED"
    passed = sum(c.passed for c in report.checks)
    lines = [
        f"# Restore drill {verdict}: backup {report.backup_id}",
        "",
        f"- **result**: {verdict}, {passed} of {len(report.checks)} checks passed",
        f"- **backup age at drill time (RPO)**: {_minutes(report.backup_age_seconds)}",
        f"- **restore time (RTO)**: {report.restore_seconds:.1f}s "
        f"(download and verification {report.download_seconds:.1f}s), "
        f"**validation**: {report.validation_seconds:.1f}s",
        f"- **databases**: {len(report.databases)}, **records**: {report.records:,}",
        f"- **scratch**: {report.scratch}"
        + (f" (kept: `{report.kept_scratch}`)" if report.kept_scratch else ", removed"),
    ]
    if record_key:
        lines.append(f"- **drill record**: `{record_key}`")
    lines += [f"- **warning**: {md_text(w)}" for w in report.warnings]
    lines += [
        "",
        "| database | records | restore | validation | result |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {d.name} | {d.records:,} | {d.restore_seconds:.2f}s | {d.validation_seconds:.2f}s "
        f"| {'passed' if d.passed else '**FAILED**'} |"
        for d in report.databases
    ]
    if report.failures:
        lines += ["", "## Failures", ""] + [f"- {md_text(f)}" for f in report.failures[:50]]
        if len(report.failures) > 50:
            lines.append(f"- ... and {len(report.failures) - 50} more")
    create_markdown_artifact(
        "\n".join(lines), key=SUMMARY_KEY, description=f"Restore drill: {verdict.lower()}"
    )


@task(name="publish-drill-failure", cache_policy=NONE)
def publish_drill_failure(backup: str | None, reasons: list[str]) -> None:
    """The summary artifact of a drill that could not run (no backup to drill, ...)."""
    lines = [
        f"# Restore drill FAILED: backup {backup or '(none chosen)'}",
        "",
        "Nothing was restored:",
        "",
    ]
    lines += [f"- {md_text(r)}" for r in reasons]
    create_markdown_artifact("\n".join(lines), key=SUMMARY_KEY, description="Restore drill: failed")


def emit_drill_event(
    passed: bool, backup_id: str | None, reasons: list[str], details: dict[str, Any] | None = None
) -> None:
    emit_spectron_event(
        "drill",
        "passed" if passed else "failed",
        {"backup_id": backup_id, "passed": passed, "reasons": reasons[:20], **(details or {})},
        name=backup_id or "none",
    )


#: Flow hook (on_failure, on_crashed): the webhook alert of a failed drill, naming the backup.
alert_on_failure = webhook_alert_hook(
    "drill", lambda exc: drill_alert_title(getattr(exc, "backup_id", None))
)
