"""`spectron-backup backup`: run the backup flow once, now."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import JsonOutput, reports_errors
from spectron_backup.config import load_config
from spectron_backup.console import err, print_json
from spectron_backup.source import check_source


@reports_errors
def command(
    config: ConfigPath = None,
    tier: Annotated[
        str,
        typer.Option(
            "--tier",
            help="auto, daily or weekly (auto: weekly for the first backup of an ISO week).",
        ),
    ] = "auto",
    json_output: JsonOutput = False,
) -> None:
    """Back up every database of the Spectron instance (through the Prefect flow `backup`)."""
    if tier not in ("auto", "daily", "weekly"):
        raise typer.BadParameter(f"{tier!r}: use auto, daily or weekly", param_hint="--tier")
    settings = load_config(config)  # one clear error before Prefect starts
    # An unreachable source is retried by the flow (a server restarting); told at once here.
    check_source(settings)
    from flows.backup import backup
    from spectron_backup.commands.flow_console import flow_console

    chosen: Literal["auto", "daily", "weekly"] = tier  # type: ignore[assignment]
    with flow_console():
        result = backup(config_path=str(config) if config else None, tier=chosen)
    if json_output:
        print_json(result)
        return
    err.print(
        f"backup {result['backup_id']} complete: {result['databases']} databases, {result['records']:,} records, "
        f"{result['raw_bytes'] / 1e6:,.1f} MB dumped -> {result['bytes'] / 1e6:,.1f} MB stored in {result['target']} "
        f"({result['seconds']:.1f}s, tiers: {', '.join(result['tiers'])})"
    )
    for warning in result["warnings"]:
        err.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    for missing in result["missing"]:
        err.print(
            f"[yellow]warning:[/] Context {missing['context']}: {missing['ns']}/{missing['db']}: "
            f"{missing['reason']}; not backed up",
            soft_wrap=True,
        )
