"""The expire sweep flow: hard-delete memory past valid_until or its per-scope TTL, per Context."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger

from spectron_backup.config import load_config
from spectron_backup.discovery import discover, require_selected
from spectron_backup.durations import time_option
from spectron_backup.errors import OperationFailed, UsageError
from spectron_backup.manifest import rfc3339
from spectron_backup.source import SourceConnections
from spectron_backup.stores import open_target_store
from spectron_backup.sweep import sweep_clock
from tasks.events import emit_spectron_event
from tasks.expire import publish_sweep_report, store_sweep_report, sweep_context


@flow(name="expire-sweep")
def expire_sweep(
    config_path: str | None = None,
    dry_run: bool = False,
    context: str | None = None,
    now: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Sweep every Context database (or one, by Context id).

    Args:
        config_path: Configuration file (YAML) on the worker; empty: $SPECTRON_BACKUP_CONFIG.
        dry_run: Report what would be deleted; delete nothing.
        context: Sweep only this Context (its id); empty: every Context.
        now: Sweep as if it were this time (RFC 3339, e.g. 2026-11-24T02:00:00Z); empty: now.
        force: Delete even more than sweep.max_delete_fraction of a table in one run.
    """
    config = load_config(config_path)
    if context is not None:
        require_selected(config.source, context)
    moment = sweep_clock(time_option(now, "now"), dry_run, datetime.now(UTC))
    policies = config.policies()
    connections = SourceConnections(config)
    try:
        conn = connections.open()
        found = discover(conn, config.source)
        for problem in found.unknown:
            get_run_logger().warning(problem)
        contexts = [ref for ref in found.databases if ref.role == "context"]
        if context is not None:
            contexts = [ref for ref in contexts if ref.context == context]
            if not contexts:
                raise UsageError(
                    f"no Context {context!r} with an existing database in {conn.display_url}"
                )
        # One Context failing must neither stop the others nor lose the report of what was
        # deleted before it: every Context is swept, the report stored, then the run fails.
        reports: list[dict[str, Any]] = []
        failures: list[tuple[str, Exception]] = []
        for ref in contexts:
            try:
                reports.append(
                    sweep_context(connections, ref, policies, config, moment, dry_run, force)
                )
            except Exception as exc:
                failures.append((f"{ref.name} (Context {ref.context})", exc))
    except Exception as exc:
        emit_spectron_event("expire", "failed", {"reason": str(exc)})
        raise
    finally:
        connections.close()
    report = {
        "dry_run": dry_run,
        "now": rfc3339(moment),
        "deleted_total": sum(r["deleted_total"] for r in reports),
        "held_total": sum(r["held"]["count"] for r in reports),
        "changed_total": sum(r["changed"]["count"] for r in reports),
        "refused": [
            f"{r['namespace']}/{r['database']}: {x['table']}" for r in reports for x in r["refused"]
        ],
        "failed": [f"{name}: {exc}" for name, exc in failures],
        "warnings": found.unknown,
        "databases": reports,
    }
    # keyed by the wall clock, never overwritten: two runs at the same --now keep both reports
    report["stored_as"] = store_sweep_report(open_target_store(config.target), report, dry_run)
    publish_sweep_report(report)
    problems = list(report["failed"])
    refused = ", ".join(report["refused"])
    guard = "to delete more than sweep.max_delete_fraction of"
    if refused and dry_run:  # what a real run would do: reported, not a failure of the dry run
        get_run_logger().warning(
            "the guard would refuse %s: %s: a real run will fail unless forced (check the "
            "clock and the retention rules first)",
            guard,
            refused,
        )
    elif refused:
        problems.append(
            f"the guard refused {guard}: {refused} (check the clock and the retention rules, "
            "or run with --force)"
        )
    if problems:
        reason = "; ".join(problems)
        emit_spectron_event("expire", "failed", {"reason": reason})
        if failures and all(isinstance(exc, UsageError) for _name, exc in failures):
            raise UsageError(reason)
        raise OperationFailed(reason)
    emit_spectron_event(
        "expire",
        "completed",
        {"deleted": report["deleted_total"], "held": report["held_total"], "dry_run": dry_run},
    )
    return report
