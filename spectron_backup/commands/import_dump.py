"""`spectron-backup import`: a dump into an empty database."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

import typer

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
from spectron_backup.dump.importer import Importer, ImportSummary
from spectron_backup.dump.reader import open_dump, validate_dump
from spectron_backup.errors import OperationFailed
from spectron_backup.surreal import connect


@reports_errors
def command(
    file: Annotated[
        str,
        typer.Argument(
            help="Dump file (.surql, or .surql.zst); '-' for stdin.", show_default=False
        ),
    ],
    target: Annotated[
        str, typer.Option("--target", help="SurrealDB URL to import into.", show_default=False)
    ],
    ns: Namespace,
    db: Database,
    force: Annotated[
        bool, typer.Option("--force", help="Import even if the database is not empty.")
    ] = False,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    auth_ns: AuthLevel = None,
    json_output: JsonOutput = False,
) -> None:
    """Import a SurrealQL dump into an empty database; report every failed statement."""
    with ExitStack() as stack:
        # stdin is spooled to a temporary file first, so it is checked like a file is
        path = Path(file) if file != "-" else stack.enter_context(_spooled_stdin())
        # Read the whole file once before touching the database: a truncated or
        # unreadable dump is refused with nothing imported.
        validate_dump(path, shown=file)
        with connect(target, credentials(username, password, token, auth_ns)) as conn:
            importer = Importer(conn, ns, db, force=force)
            importer.prepare_target()
            with open_dump(path) as fp, progress_bar(f"import {ns}/{db}") as bar:
                if bar:
                    importer.progress = lambda n, chars: bar(
                        f"{n:,} statements, {chars / 1e6:,.1f} MB"
                    )
                summary = importer.import_file(fp)
    if json_output:
        print_json({"file": file, **summary.to_json()})
    else:
        _report(summary, file)
    if not summary.ok:
        raise OperationFailed(
            f"{len(summary.failures)} of {summary.statements} statements failed; the import is incomplete"
        )


@contextmanager
def _spooled_stdin() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="spectron-import-") as tmp:
        path = Path(tmp) / "stdin.surql"
        with open(path, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
        yield path


def _report(summary: ImportSummary, file: str) -> None:
    for failure in summary.failures:
        err.print(f"[red]failed[/] {file}:{failure}", soft_wrap=True, markup=True)
    err.print(
        f"imported {file} into {summary.namespace}/{summary.database}: {summary.statements:,} statements, "
        f"{len(summary.failures)} failed, in {summary.seconds:.1f}s",
        soft_wrap=True,
    )
