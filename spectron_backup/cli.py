"""The `spectron-backup` command line: one entry point for people and scripts.

Exit status: 0 success, 1 the operation ran and failed its purpose, 2 bad usage,
configuration or input.
"""

from __future__ import annotations

import typer

from spectron_backup.commands import demo, export, import_dump

app = typer.Typer(
    name="spectron-backup",
    help="Backups, restore drills and memory expiry for a self-hosted Spectron.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("export")(export.command)
app.command("import")(import_dump.command)
app.command("demo")(demo.command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
