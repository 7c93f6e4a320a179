"""`spectron-backup bucket check|ensure|undelete|restore`: the document bucket guard.

The bucket is the configuration's `documents.url` (s3://bucket[/prefix]); a file:// document
store has no versions, so these commands refuse it (exit 2). `check` exits 1 when something
recommended is missing; `ensure` exits 1 when it is still missing afterwards.
"""

from __future__ import annotations

from contextlib import closing
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from spectron_backup.bucket import BucketStatus, DocumentBucket, KeyOutcome, open_document_bucket
from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import JsonOutput, reports_errors
from spectron_backup.config import load_config
from spectron_backup.console import err, print_json
from spectron_backup.durations import time_option

app = typer.Typer(
    help="The document bucket guard: versioning, lifecycle rule, replication, undelete.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
Key = Annotated[
    str, typer.Argument(help="The document's key, relative to documents.url.", show_default=False)
]


def _bucket(config: ConfigPath) -> DocumentBucket:
    return open_document_bucket(load_config(config).documents)


def show_status(status: BucketStatus, title: str) -> None:
    table = Table(title=escape(f"{title}: {status.url}"))
    for column in ("check", "status", "detail"):
        table.add_column(column)
    for finding in status.findings:
        if finding.ok:
            mark = "[green]ok[/]"
        elif finding.required:
            mark = "[bold red]MISSING[/]"
        else:
            mark = "[yellow]not set[/]"
        table.add_row(finding.name, mark, escape(finding.detail))
    err.print(table)
    for warning in status.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


@app.command("check")
@reports_errors
def check(config: ConfigPath = None, json_output: JsonOutput = False) -> None:
    """Report versioning, lifecycle rules and replication; exit 1 if something is missing."""
    with closing(_bucket(config)) as bucket:
        status = bucket.check()
        plan = None if status.ok else bucket.plan(status)  # reads only; changes nothing
    if json_output:
        print_json(status.to_json())
    else:
        show_status(status, "document bucket")
        if status.ok:
            err.print("[green]the document bucket is guarded[/]")
        else:
            names = ", ".join(f.name for f in status.missing)
            assert plan is not None
            if plan.changes:
                fixes = "; ".join(c.action for c in plan.changes)
                err.print(f"missing: {names}; `spectron-backup bucket ensure` would: {fixes}")
            else:
                err.print(f"missing: {names}; `spectron-backup bucket ensure` changes nothing here")
            for note in plan.notes:
                err.print(f"  note: {escape(note)}", soft_wrap=True)
    if not status.ok:
        raise typer.Exit(1)


@app.command("ensure")
@reports_errors
def ensure(config: ConfigPath = None, dry_run: DryRun = False, json_output: JsonOutput = False):
    """Turn versioning on, add the guard's lifecycle rule (keeping the others); idempotent."""
    with closing(_bucket(config)) as bucket:
        plan, after = bucket.ensure(dry_run=dry_run)
    if json_output:
        print_json(
            {
                "dry_run": dry_run,
                **plan.to_json(),
                "before": plan.status.to_json(),
                "after": after.to_json(),
            }
        )
    else:
        verb = "would" if dry_run else "done:"
        for change in plan.changes:
            err.print(f"{verb} {change.action}: {change.detail}", markup=False, soft_wrap=True)
        if not plan.changes:
            err.print("nothing to change")
        for note in plan.notes:
            err.print(f"note: {note}", markup=False, soft_wrap=True)
        if dry_run and plan.changes:
            err.print("dry run: nothing was changed")
        else:
            show_status(after, "document bucket after ensure")
    if not dry_run and not after.ok:
        raise typer.Exit(1)


def _show_outcome(outcome: KeyOutcome, json_output: bool) -> None:
    if json_output:
        print_json(outcome.to_json())
    else:
        err.print(outcome.message, markup=False, soft_wrap=True)


@app.command("undelete")
@reports_errors
def undelete(
    key: Key, config: ConfigPath = None, dry_run: DryRun = False, json_output: JsonOutput = False
) -> None:
    """Bring a deleted document back: remove the delete marker hiding its newest version."""
    with closing(_bucket(config)) as bucket:
        outcome = bucket.undelete(key, dry_run=dry_run)
    _show_outcome(outcome, json_output)


@app.command("restore")
@reports_errors
def restore(
    key: Key,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Restore the version current at this time (RFC 3339).",
            show_default=False,
        ),
    ] = None,
    version_id: Annotated[
        str | None,
        typer.Option("--version-id", help="Restore this version instead.", show_default=False),
    ] = None,
    config: ConfigPath = None,
    dry_run: DryRun = False,
    json_output: JsonOutput = False,
) -> None:
    """Copy the version of a document current at --as-of TIME over its current version."""
    moment = time_option(as_of, "--as-of")
    with closing(_bucket(config)) as bucket:
        outcome = bucket.restore(key, as_of=moment, version_id=version_id, dry_run=dry_run)
    _show_outcome(outcome, json_output)
