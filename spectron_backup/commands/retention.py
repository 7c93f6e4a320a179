"""`spectron-backup retention check`: the effective memory retention policies (design section 7).

The table needs only the configuration file. Warnings (ties, rules that can never apply) are
printed but do not fail the command; a bad rule fails the load (exit 2). When `source.url`
is a reachable server (not `mem://`, which is always empty), it also names, per Context
database, the indexes the expire sweep would need to cost what it deletes rather than what
the table holds; an unreachable source is reported as a note, not a failure.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import JsonOutput, reports_errors
from spectron_backup.config import load_config
from spectron_backup.console import err, print_json
from spectron_backup.errors import SpectronBackupError
from spectron_backup.sweep import index_advice, sweep_tables


def _index_report(config: Any) -> tuple[dict[str, list[str]], str | None]:
    """Context database -> advised indexes; or a note on why nothing was checked."""
    if config.source.url.startswith("mem://"):
        return {}, "indexes not checked: source.url is mem:// (always empty)"
    from spectron_backup.discovery import discover
    from spectron_backup.source import source_credentials
    from spectron_backup.surreal import connect, surreal_identifier

    report: dict[str, list[str]] = {}
    try:
        with connect(config.source.url, source_credentials(config), must_exist=True) as conn:
            for ref in discover(conn, config.source).databases:
                if ref.role != "context":
                    continue
                conn.use(ref.ns, ref.db)
                tables = (conn.run_one("INFO FOR DB") or {}).get("tables", {})
                advice: list[str] = []
                for table in sweep_tables(config.sweep.tables):
                    if table.name in tables:
                        info = conn.run_one(f"INFO FOR TABLE {surreal_identifier(table.name)}")
                        advice += index_advice(table, info or {}, config.sweep.fields)
                report[f"{ref.name} (context {ref.context})"] = advice
    except SpectronBackupError as exc:
        return report, f"indexes not checked: {exc}"
    return report, None


app = typer.Typer(
    help="Memory retention policies (the `retention:` list of the configuration).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
retention_app = app


@app.command("check")
@reports_errors
def check(config: ConfigPath = None, json_output: JsonOutput = False) -> None:
    """Validate the retention rules; print the effective policy table and warnings."""
    config_obj = load_config(config)
    policies = config_obj.policies()
    rows = policies.table()
    warnings = policies.warnings()
    indexes, index_note = _index_report(config_obj)
    if json_output:
        print_json(
            {"policies": rows, "warnings": warnings, "indexes": indexes, "index_note": index_note}
        )
        return
    table = Table(title="memory retention (per category, in precedence order)")
    for column in ("category", "rule", "scope", "ttl", "note"):
        table.add_column(column)
    for row in rows:
        scope = ", ".join(f"{d}={v}" for d, v in row["scope"].items())
        note = ""
        if row["rule"] is None:
            note = "default when no rule matches"
        elif row["shadowed_by"] is not None:
            note = f"[yellow]never applies: rule {row['shadowed_by']} wins[/]"
        table.add_row(
            row["memory_category"],
            "default" if row["rule"] is None else str(row["rule"]),
            scope or ("-" if row["rule"] is None else "any scope"),
            row["ttl"],
            note,
        )
    err.print(table)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    if not warnings:
        err.print("[green]no ties or shadowed rules[/]")
    for database, advice in indexes.items():
        if not advice:
            err.print(f"[green]{database}: the sweep's indexes are in place[/]")
        for statement in advice:
            err.print(f"[yellow]index:[/] {database}: {statement}", soft_wrap=True)
    if index_note:
        err.print(index_note, soft_wrap=True)
