"""The restore drill flow: choose a backup -> restore every database into a scratch SurrealDB
-> validate -> drill record -> artifacts and events; a failed drill fails the flow run and,
when `alerts.webhook_url` is set, the failure hook posts an alert (unless the server's
automation from `make deploy` covers this flow: then that one does)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import Field

from spectron_backup.config import load_config
from spectron_backup.drill import (
    SCRATCH_SECRETS,
    DrillFailed,
    open_documents_store,
    scratch_credentials,
)
from spectron_backup.stores import open_target_store
from spectron_backup.urls import secret_free_url
from tasks.drill import (
    alert_on_failure,
    choose_drill_backup,
    emit_drill_event,
    publish_drill_failure,
    publish_drill_report,
    run_drill_task,
    write_drill_record_task,
)
from tasks.encryption import load_identity

#: what a drill may be asked for; the deployment's form and the API refuse anything else
BackupChoice = Annotated[str, Field(pattern=r"^(latest|random|\d{8}T\d{6}Z-[0-9a-f]+)$")]


@flow(name="restore-drill", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def restore_drill(
    config_path: str | None = None,
    backup: BackupChoice | None = None,
    scratch_url: str | None = None,
    keep_scratch: bool = False,
) -> dict[str, Any]:
    """Restore a backup into a scratch SurrealDB and validate it; the run fails if any check
    fails or the backup cannot be found or read.

    Args:
        config_path: Configuration file (YAML) on the worker; empty: $SPECTRON_BACKUP_CONFIG.
        backup: latest, random (a complete backup of the last drill.window_days) or a backup
            id (YYYYMMDDTHHMMSSZ-hex); empty: the configuration's drill.selection.
        scratch_url: SurrealDB to restore into, under uniquely prefixed namespaces that are
            dropped afterwards; empty: drill.scratch_url, else a temporary embedded store.
        keep_scratch: Leave the scratch in place, for debugging.
    """
    logger = get_run_logger()
    config = load_config(config_path)
    store = open_target_store(config.target, must_exist=True)
    documents = open_documents_store(config.documents)
    if documents is None:
        logger.warning("no `documents` store configured: document objects are not checked")
    now = datetime.now(UTC)
    chosen: str | None = backup if backup not in (None, "", "latest", "random") else None
    try:
        manifest = choose_drill_backup(store, config.drill, backup or None, now)
        chosen = manifest.backup_id
        identity = load_identity(config.encryption) if manifest.encrypted else None
        report = run_drill_task(
            store,
            manifest,
            secret_free_url(scratch_url, "scratch_url", SCRATCH_SECRETS)
            or config.drill.scratch_url,
            documents,
            keep_scratch,
            now,
            identity,
            scratch_credentials(config.drill),
        )
        record_key = write_drill_record_task(store, report)
        publish_drill_report(report, record_key)
    except Exception as exc:
        reasons = [str(exc)]
        if isinstance(exc, DrillFailed):
            reasons, chosen = exc.failures, exc.backup_id or chosen
        publish_drill_failure(chosen, reasons)
        emit_drill_event(False, chosen, reasons)
        raise
    details = {
        "record": record_key,
        "backup_age_seconds": round(report.backup_age_seconds, 3),
        "restore_seconds": round(report.restore_seconds, 3),
        "validation_seconds": round(report.validation_seconds, 3),
        "records": report.records,
    }
    emit_drill_event(report.passed, report.backup_id, report.failures, details)
    record = {**report.to_record(), "record": record_key}
    if not report.passed:
        raise DrillFailed(report.backup_id, report.failures, record)
    logger.info(
        "drill of backup %s passed: %d checks, restore %.1fs, validation %.1fs, backup age %.0fs",
        report.backup_id,
        len(report.checks),
        report.restore_seconds,
        report.validation_seconds,
        report.backup_age_seconds,
    )
    return record
