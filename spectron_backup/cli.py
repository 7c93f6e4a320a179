"""The `spectron-backup` command line: one entry point for people and scripts.

Exit status: 0 success, 1 the operation ran and failed its purpose, 2 bad usage,
configuration or input.
"""

from __future__ import annotations

import typer

from spectron_backup.commands import (
    backup,
    bucket,
    demo,
    drill,
    expire,
    export,
    import_dump,
    list_backups,
    prune,
    restore,
    retention,
    seed,
)
from spectron_backup.commands.options import run_app

app = typer.Typer(
    name="spectron-backup",
    help="Backups, restore drills and memory expiry for a self-hosted Spectron.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("export")(export.command)
app.command("import")(import_dump.command)
app.command("seed")(seed.command)
app.command("demo")(demo.command)
app.command("backup")(backup.command)
app.command("list")(list_backups.command)
app.command("prune")(prune.command)
app.command("expire")(expire.command)
app.command("restore")(restore.command)
app.command("drill")(drill.command)
app.add_typer(retention.app, name="retention")
app.add_typer(bucket.app, name="bucket")


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
