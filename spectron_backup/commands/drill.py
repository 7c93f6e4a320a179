"""`spectron-backup drill`: run the restore drill flow once, now."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import JsonOutput, reports_errors
from spectron_backup.config import load_config
from spectron_backup.console import err, print_json
from spectron_backup.drill import SCRATCH_SECRETS, DrillFailed, choose_backup_request
from spectron_backup.errors import SpectronBackupError, UsageError
from spectron_backup.surreal import check_url
from spectron_backup.urls import secret_free_url


@reports_errors
def command(
    config: ConfigPath = None,
    backup: Annotated[
        str | None,
        typer.Option(
            "--backup",
            help="latest, random (a complete backup of the last drill.window_days) or a backup "
            "id; default: drill.selection of the configuration.",
            show_default=False,
        ),
    ] = None,
    scratch: Annotated[
        str | None,
        typer.Option(
            "--scratch",
            help="SurrealDB to restore into, under uniquely prefixed namespaces that are removed "
            "afterwards (default: drill.scratch_url, else a temporary embedded store).",
            show_default=False,
        ),
    ] = None,
    keep_scratch: Annotated[
        bool,
        typer.Option("--keep-scratch", help="Leave the scratch store in place, for debugging."),
    ] = False,
    json_output: JsonOutput = False,
) -> None:
    """Restore drill: restore a backup into a scratch SurrealDB and validate it (through the
    Prefect flow `restore-drill`); the drill record is written next to the backup.

    Exit status: 0 the drill passed; 1 it failed, also when the backup does not exist or cannot be read (a drill of a missing backup is a failed drill); 2 bad usage or configuration (for example a --backup that is not latest, random or a backup id).
    """
    choose_backup_request(backup)  # one clear usage error before Prefect starts
    secret_free_url(scratch, "--scratch", SCRATCH_SECRETS)
    settings = load_config(config)
    if scratch is not None:
        check_scratch_url(scratch, "--scratch")
    elif settings.drill.scratch_url is not None:
        check_scratch_url(settings.drill.scratch_url, "drill.scratch_url")
    from flows.drill import restore_drill
    from spectron_backup.commands.flow_console import flow_console

    with flow_console():
        state = restore_drill(
            config_path=str(config) if config else None,
            backup=backup,
            scratch_url=scratch,
            keep_scratch=keep_scratch,
            return_state=True,
        )
    if state.is_completed():
        record = state.result()
        if json_output:
            print_json(record)
        else:
            _show(record)
        return
    failure = state.result(raise_on_failure=False)
    if not isinstance(failure, BaseException):
        failure = DrillFailed(None, [state.message or "the drill flow run did not complete"])
    if isinstance(failure, DrillFailed):
        record = failure.record or {
            "backup_id": failure.backup_id,
            "passed": False,
            "failures": failure.failures,
        }
        if json_output:
            print_json(record)
        elif failure.record:
            _show(failure.record)
        raise failure
    if isinstance(failure, SpectronBackupError):
        raise failure
    raise DrillFailed(None, [f"{type(failure).__name__}: {failure}"])


def check_scratch_url(url: str, where: str) -> None:
    """Refuse, before Prefect starts, a scratch URL the drill could never connect to (the
    checks a connection makes before opening anything). Inside the flow the same mistake
    would fail the drill run and post an alert."""
    try:
        check_url(url)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _show(record: dict[str, Any]) -> None:
    table = Table(title=f"restore drill of backup {record['backup_id']}")
    for column in ("database", "records", "restore", "validation", "result"):
        table.add_column(column)
    for row in record["databases"]:
        table.add_row(
            f"{row['ns']}/{row['db']}",
            f"{row['records']:,}",
            f"{row['restore_seconds']:.2f}s",
            f"{row['validation_seconds']:.2f}s",
            "[green]passed[/]" if row["passed"] else "[red]FAILED[/]",
        )
    err.print(table)
    checks = record["checks"]
    verdict = "[green]PASSED[/]" if record["passed"] else "[red]FAILED[/]"
    err.print(
        f"drill {verdict}: {sum(c['passed'] for c in checks)} of {len(checks)} checks passed; "
        f"backup age {record['backup_age_seconds']:,.0f}s (RPO), restore {record['restore_seconds']:.1f}s "
        f"(RTO), validation {record['validation_seconds']:.1f}s; record {record.get('record')}"
    )
    for failure in record["failures"]:
        err.print(f"  [red]x[/] {failure}", soft_wrap=True)
