"""`spectron-backup prune`: apply the retention rules now (through the Prefect flow `prune`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import JsonOutput, reports_errors
from spectron_backup.config import load_config
from spectron_backup.console import err, print_json
from spectron_backup.durations import time_option
from spectron_backup.leases import in_use_by
from spectron_backup.stores import open_target_store


@reports_errors
def command(
    config: ConfigPath = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report the decisions; delete nothing.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(
            "--now", help="Decide as if it were this time (RFC 3339).", show_default=False
        ),
    ] = None,
    json_output: JsonOutput = False,
) -> None:
    """Delete backups no retention rule keeps, and garbage older than the grace period."""
    settings = load_config(config)  # one clear error before Prefect starts
    time_option(now, "--now")  # a bad time is refused before Prefect starts
    # ... and a file target that does not exist (a typo), rather than "nothing to prune"
    open_target_store(settings.target, must_exist=True).close()
    from flows.prune import prune
    from spectron_backup.commands.flow_console import flow_console

    with flow_console():
        report = prune(config_path=str(config) if config else None, dry_run=dry_run, now=now)
    if json_output:
        print_json(report)
    else:
        _show(report)


def _show(report: dict[str, Any]) -> None:
    table = Table(
        title="retention decisions" + (" (dry run: nothing deleted)" if report["dry_run"] else "")
    )
    for column in ("backup id", "action", "why"):
        table.add_column(column)
    in_use = {item["backup_id"] for item in report["kept_in_use"]}
    for decision in report["decisions"]:
        action = decision["action"]
        shown = (
            "[green]keep[/]"
            if action == "keep"
            else "[yellow]kept: in use[/]"
            if decision["backup_id"] in in_use
            else "[yellow]kept: locked[/]"
            if decision["backup_id"] in report["kept_by_lock"]
            else ("[yellow]would delete[/]" if report["dry_run"] else "[red]deleted[/]")
        )
        table.add_row(decision["backup_id"], shown, "; ".join(decision["reasons"]))
    for item in report["garbage"]:
        table.add_row(
            item["key"],
            "[yellow]would collect[/]" if report["dry_run"] else "[red]collected[/]",
            f"{item['kind']}: {item['detail']}",
        )
    err.print(table)
    for backup_id in report["kept_by_lock"]:
        err.print(
            f"[yellow]kept by S3 Object Lock:[/] {backup_id} until {report['locked_until'].get(backup_id)}"
        )
    for item in report["kept_in_use"]:
        err.print(
            f"[yellow]kept in use:[/] {item['backup_id']}: {escape(in_use_by(item['leases']))}"
        )
    for problem in report["problems"]:
        err.print(f"[red]problem:[/] {problem}")
