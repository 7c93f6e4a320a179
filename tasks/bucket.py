"""Prefect tasks of the bucket guard: thin wrappers around `spectron_backup.bucket`, the
report's artifacts and events, and the flow's webhook alert hook."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from spectron_backup.bucket import BucketStatus, DocumentBucket, Plan
from tasks.alerts import webhook_alert_hook
from tasks.events import emit_spectron_event
from tasks.markdown import md_text
from tasks.retries import SHORT_STEP_RETRIES

SUMMARY_KEY = "spectron-bucket-guard"
CHECKS_KEY = "spectron-bucket-guard-checks"


@task(name="check-bucket", cache_policy=NONE, **SHORT_STEP_RETRIES)
def check_bucket(bucket: DocumentBucket) -> BucketStatus:
    status = bucket.check()
    logger = get_run_logger()
    for finding in status.findings:
        state = "ok" if finding.ok else ("MISSING" if finding.required else "not set")
        logger.info("%s: %s: %s", finding.name, state, finding.detail)
    for warning in status.warnings:
        logger.warning(warning)
    return status


@task(name="ensure-bucket", cache_policy=NONE, **SHORT_STEP_RETRIES)
def ensure_bucket(bucket: DocumentBucket, dry_run: bool) -> tuple[Plan, BucketStatus]:
    """Plan from a fresh read and apply (idempotent, so a retry is safe)."""
    plan, after = bucket.ensure(dry_run=dry_run)
    logger = get_run_logger()
    verb = "would" if dry_run else "done:"
    for change in plan.changes:
        logger.info("%s %s: %s", verb, change.action, change.detail)
    if not plan.changes:
        logger.info("nothing to change")
    for note in plan.notes:
        logger.info(note)
    return plan, after


@task(name="publish-bucket-report", cache_policy=NONE)
def publish_bucket_report(
    before: BucketStatus, plan: Plan | None, after: BucketStatus, dry_run: bool
) -> None:
    create_table_artifact(
        [
            {
                "check": f.name,
                "ok": f.ok,
                "required": f.required,
                "detail": f.detail,
            }
            for f in after.findings
        ],
        key=CHECKS_KEY,
        description=f"Document bucket guard: {after.url}",
    )
    verdict = "OK" if after.ok else "MISSING: " + ", ".join(f.name for f in after.missing)
    mode = "check only"
    if plan is not None:
        mode = "check and ensure" + (" (dry run: nothing changed)" if dry_run else "")
    lines = [
        f"# Document bucket guard {verdict}",
        "",
        f"- **bucket**: `{after.url}`",
        f"- **run**: {mode}",
        f"- **versioning**: {after.versioning}",
        "",
        "| check | before | after | detail |",
        "|---|---|---|---|",
    ]

    def mark(status: BucketStatus, name: str) -> str:
        finding = status.finding(name)
        if finding.ok:
            return "ok"
        return "**missing**" if finding.required else "not set"

    lines += [
        f"| {f.name} | {mark(before, f.name)} | {mark(after, f.name)} | {md_text(f.detail)} |"
        for f in after.findings
    ]
    if plan is not None:
        lines += ["", "## Changes" + (" (not made: dry run)" if dry_run else ""), ""]
        lines += [f"- {c.action}: {md_text(c.detail)}" for c in plan.changes] or ["- none"]
        lines += [f"- note: {md_text(n)}" for n in plan.notes]
    if after.warnings:
        lines += ["", "## Warnings", ""] + [f"- {md_text(w)}" for w in after.warnings]
    create_markdown_artifact(
        "\n".join(lines), key=SUMMARY_KEY, description=f"Document bucket guard: {verdict}"
    )


def emit_bucket_event(
    ok: bool, bucket: str | None, reasons: list[str], details: dict[str, Any] | None = None
) -> None:
    emit_spectron_event(
        "bucket",
        "checked" if ok else "failed",
        {"bucket": bucket, "ok": ok, "reasons": reasons[:20], **(details or {})},
        name=bucket or "unknown",
    )


#: Flow hook (on_failure, on_crashed): the webhook alert of a failed guard run.
alert_on_bucket_failure = webhook_alert_hook(
    "bucket guard",
    lambda exc: (
        ":rotating_light: Spectron document bucket guard FAILED"
        + (f": bucket `{exc.bucket}`" if getattr(exc, "bucket", None) else "")
    ),
)
