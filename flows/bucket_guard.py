"""The bucket guard flow (daily): check the document bucket, and ensure what is missing when
configured to; a failed guard (something still missing, or the bucket unreachable) fails the
run, emits `spectron.bucket.failed` and, when `alerts.webhook_url` is set, posts an alert."""

from __future__ import annotations

from typing import Any

from prefect import flow

from spectron_backup.bucket import open_document_bucket
from spectron_backup.config import load_config
from tasks.bucket import (
    alert_on_bucket_failure,
    check_bucket,
    emit_bucket_event,
    ensure_bucket,
    publish_bucket_report,
)


@flow(
    name="bucket-guard", on_failure=[alert_on_bucket_failure], on_crashed=[alert_on_bucket_failure]
)
def bucket_guard(
    config_path: str | None = None, ensure: bool | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Check the `documents` bucket: versioning, the lifecycle rule, replication. The run fails
    when something required is still missing at the end.

    Args:
        config_path: Configuration file (YAML) on the worker; empty: $SPECTRON_BACKUP_CONFIG.
        ensure: Also turn versioning on and add the guard's lifecycle rule; empty: the
            configuration's documents.guard.ensure.
        dry_run: Report what ensure would change; change nothing.
    """
    config = load_config(config_path)
    if ensure is None:
        ensure = bool(config.documents and config.documents.guard.ensure)
    name: str | None = None
    try:
        bucket = open_document_bucket(config.documents)
        name = bucket.bucket
        try:
            before = check_bucket(bucket)
            plan, after = ensure_bucket(bucket, dry_run) if ensure else (None, before)
        finally:
            bucket.close()
        publish_bucket_report(before, plan, after, dry_run)
    except Exception as exc:
        emit_bucket_event(False, name, [str(exc)])
        raise
    report = {
        "bucket": after.bucket,
        "url": after.url,
        "ok": after.ok,
        "ensure": ensure,
        "dry_run": dry_run,
        "changes": [c.to_json() for c in plan.changes] if plan else [],
        "notes": plan.notes if plan else [],
        "before": before.to_json(),
        "after": after.to_json(),
    }
    failure = after.failure()
    summary = {"ensure": ensure, "dry_run": dry_run, "changes": report["changes"]}
    if failure is not None:
        emit_bucket_event(False, name, failure.failures, summary)
        raise failure
    emit_bucket_event(True, name, [], summary)
    return report
