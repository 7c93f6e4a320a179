"""`spectron-backup expire`: the expire sweep once, now (through the Prefect flow)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import JsonOutput, reports_errors
from spectron_backup.config import load_config
from spectron_backup.console import err, print_json
from spectron_backup.discovery import require_selected
from spectron_backup.durations import time_option
from spectron_backup.sweep import sweep_clock


@reports_errors
def command(
    config: ConfigPath = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")
    ] = False,
    context: Annotated[
        str | None,
        typer.Option("--context", help="Sweep only this Context (its id).", show_default=False),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Sweep as if it were this time (RFC 3339).", show_default=False),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete even more than sweep.max_delete_fraction of a table."),
    ] = False,
    json_output: JsonOutput = False,
) -> None:
    """Hard-delete memory past its valid_until or its per-scope TTL (see `retention check`)."""
    settings = load_config(config)  # one clear error (a bad retention rule too) before Prefect
    if context is not None:
        require_selected(settings.source, context)
    # a bad or (for a real sweep) future time is refused before Prefect starts
    sweep_clock(time_option(now, "--now"), dry_run, datetime.now(UTC))
    from flows.expire import expire_sweep
    from spectron_backup.commands.flow_console import flow_console

    with flow_console():
        report = expire_sweep(
            config_path=str(config) if config else None,
            dry_run=dry_run,
            context=context,
            now=now,
            force=force,
        )
    if json_output:
        print_json(report)
    else:
        _show(report)


def _show(report: dict[str, Any]) -> None:
    table = Table(
        title="expire sweep" + (" (dry run: nothing deleted)" if report["dry_run"] else "")
    )
    for column in ("context", "table", "category", "reason", "policy", "records", "sample ids"):
        table.add_column(column)
    for database in report["databases"]:
        for item in database["deleted"]:
            table.add_row(
                str(database["context"]),
                item["table"],
                item["category"],
                item["reason"],
                item["policy"],
                f"{item['count']:,}",
                ", ".join(item["sample_ids"][:3]),
            )
    err.print(table)
    verb = "would delete" if report["dry_run"] else "deleted"
    changed = report.get("changed_total", 0)
    err.print(
        f"{verb} {report['deleted_total']:,} records; {report['held_total']:,} expired entities "
        "held (still referred to); "
        + (f"{changed:,} left because they changed during the sweep; " if changed else "")
        + f"report stored as {report['stored_as']}"
    )
    if report["dry_run"] and report["refused"]:
        err.print(
            "[yellow]the guard would refuse[/] to delete more than sweep.max_delete_fraction of: "
            + ", ".join(report["refused"])
            + ": a real run fails there unless --force (check the clock and the rules first)"
        )
