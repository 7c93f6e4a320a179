"""`spectron-backup export`: one database to a `surreal export`-compatible dump."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated

import typer

from spectron_backup.atomic import atomic_binary_writer
from spectron_backup.commands.options import (
    AuthLevel,
    Database,
    JsonOutput,
    Namespace,
    Password,
    Token,
    Username,
    credentials,
    reports_errors,
)
from spectron_backup.console import err, print_json, progress_bar
from spectron_backup.dump.export import ExportSummary, export_database
from spectron_backup.errors import UsageError
from spectron_backup.streams import zstd_writer
from spectron_backup.surreal import connect


@reports_errors
def command(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="SurrealDB URL: mem://, surrealkv://PATH, ws://HOST:PORT, http://...",
            show_default=False,
        ),
    ],
    ns: Namespace,
    db: Database,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Dump file; '-' for stdout (plain text). A name ending in .zst is written "
            "zstd-compressed.",
        ),
    ] = "-",
    username: Username = None,
    password: Password = None,
    token: Token = None,
    auth_ns: AuthLevel = None,
    json_output: JsonOutput = False,
) -> None:
    """Export one database as SurrealQL (the format of `surreal export`); zstd-compressed
    when the output file's name ends in .zst."""
    to_stdout = output == "-"
    if to_stdout and json_output:
        raise UsageError(
            "--json prints the summary on stdout, where the dump also goes: pass -o FILE with --json"
        )
    with (
        connect(source, credentials(username, password, token, auth_ns), must_exist=True) as conn,
        progress_bar(f"export {ns}/{db}") as bar,
    ):
        progress = (lambda table, n: bar(f"{table}: {n:,} records")) if bar else None
        if to_stdout:
            try:
                summary = export_database(conn, ns, db, sys.stdout.buffer, progress=progress)
            finally:
                sys.stdout.buffer.flush()
        else:
            with dump_file(Path(output)) as out:
                summary = export_database(conn, ns, db, out, progress=progress)
    for warning in summary.warnings:
        err.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    if json_output:
        print_json({"output": output, **summary.to_json()})
    else:
        _report(summary, output)


@contextmanager
def dump_file(path: Path) -> Iterator[IO[bytes]]:
    """The dump file at `path`, written under a temporary name and renamed only if the block
    succeeds; a zstd stream (as in a backup) when the name ends in .zst, so that the name says
    what the bytes are and `zstd -d` or `import` read it."""
    with atomic_binary_writer(path) as out:
        if not path.name.lower().endswith(".zst"):
            yield out
            return
        with zstd_writer(out) as plain:
            yield plain


def _report(summary: ExportSummary, output: str) -> None:
    where = "stdout" if output == "-" else output
    snapshot = "consistent snapshot" if summary.snapshot else "NOT a consistent snapshot"
    err.print(
        f"exported {summary.namespace}/{summary.database}: {summary.records:,} records in "
        f"{len(summary.tables)} tables to {where} in {summary.seconds:.1f}s ({snapshot}: {summary.snapshot_method})",
        soft_wrap=True,
    )
