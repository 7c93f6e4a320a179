"""`spectron-backup restore`: a backup, or one Context of it, into empty databases."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import (
    JsonOutput,
    Password,
    Token,
    Username,
    credentials,
    reports_errors,
)
from spectron_backup.config import EncryptionConfig, load_config
from spectron_backup.console import err, print_json, progress_bar
from spectron_backup.dump.importer import database_is_empty
from spectron_backup.durations import time_option
from spectron_backup.encryption import Identity, identities_of
from spectron_backup.errors import OperationFailed, UsageError
from spectron_backup.repository import Repository, manifest_key
from spectron_backup.restore import (
    leased_backup,
    require_identity,
    restore_database,
    select_databases,
)
from spectron_backup.stores import open_target_store
from spectron_backup.stores.base import ObjectNotFound
from spectron_backup.surreal import SurrealConnection, connect


@reports_errors
def command(
    backup: Annotated[
        str | None, typer.Argument(help="`latest` or a backup id (see `list`).", show_default=False)
    ] = None,
    target: Annotated[
        str, typer.Option("--target", help="SurrealDB URL to restore into.", show_default=False)
    ] = "",
    config: ConfigPath = None,
    before: Annotated[
        str | None,
        typer.Option(
            "--before",
            help="The newest complete backup started before this time (RFC 3339).",
            show_default=False,
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option("--context", help="Restore only this Context (its id).", show_default=False),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database", help="Restore only this database, as NS/DB.", show_default=False
        ),
    ] = None,
    ns_prefix: Annotated[
        str,
        typer.Option(
            "--ns-prefix", help="Prefix for the restored namespaces (restore beside the originals)."
        ),
    ] = "",
    username: Username = None,
    password: Password = None,
    token: Token = None,
    json_output: JsonOutput = False,
) -> None:
    """Restore a backup: verify each object's sha256 (and decrypt it with encryption.identity
    when the backup is encrypted), import it into an empty database, and check every table's
    record count and content hash against the manifest."""
    if not target:
        raise UsageError("--target URL is required: the SurrealDB to restore into")
    if backup is not None and before is not None:
        raise UsageError("give either a backup (latest or an id) or --before TIME, not both")
    if context is not None and database is not None:
        raise UsageError("give either --context or --database, not both")
    moment = time_option(before, "--before")
    settings = load_config(config)
    store = open_target_store(settings.target, must_exist=True)
    repo = Repository(store)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    # Leased from its choice to its last import: a prune running meanwhile leaves it whole.
    with leased_backup(repo, backup or "latest", before=moment) as (manifest, lease):
        shown = _warn(lease.warnings)
        entries = select_databases(manifest, context=context, database=database)
        identities = _identities(settings.encryption) if any(e.encrypted for e in entries) else []
        # Before touching the target: a backup we cannot open is bad input (exit 2).
        require_identity(manifest.backup_id, entries, identities)
        with (
            connect(target, credentials(username, password, token)) as conn,
            progress_bar(f"restore {manifest.backup_id}") as bar,
        ):
            _refuse_non_empty(conn, [(ns_prefix + e.ns, e.db) for e in entries])
            for entry in entries:
                if bar:
                    bar(f"{entry.ns}/{entry.db}")
                namespace = ns_prefix + entry.ns
                try:
                    restored = restore_database(
                        store, entry, conn, namespace=namespace, identities=identities
                    )
                except OperationFailed as exc:
                    error = str(exc)
                    if isinstance(exc, ObjectNotFound) and not store.exists(
                        manifest_key(manifest.backup_id)
                    ):
                        error = (
                            f"{entry.ns}/{entry.db}: backup {manifest.backup_id} was deleted "
                            "during the restore (by a prune that had listed it just before this "
                            "restore leased it): restore another backup"
                        )
                    problems.append(error)
                    rows.append(
                        {
                            "database": f"{entry.ns}/{entry.db}",
                            "into": f"{namespace}/{entry.db}",
                            "ok": False,
                            "error": error,
                        }
                    )
                    continue
                problems += [f"{entry.ns}/{entry.db}: {f}" for f in restored.imported.failures]
                problems += [f"{entry.ns}/{entry.db}: {m}" for m in restored.mismatches]
                rows.append(
                    {
                        "database": f"{entry.ns}/{entry.db}",
                        "context": entry.context,
                        "into": f"{namespace}/{entry.db}",
                        "records": entry.records,
                        "download_seconds": round(restored.download_seconds, 3),
                        "import_seconds": round(restored.import_seconds, 3),
                        "failed_statements": len(restored.imported.failures),
                        "mismatched_tables": [m.table for m in restored.mismatches],
                        "ok": restored.ok,
                    }
                )
    _warn(lease.warnings[shown:])  # a refresh or the lease's deletion that failed
    if json_output:
        print_json(
            {
                "backup_id": manifest.backup_id,
                "target": conn.display_url,
                "databases": rows,
                "warnings": lease.warnings,
                "ok": not problems,
            }
        )
    else:
        _show(manifest.backup_id, rows)
    if problems:
        raise OperationFailed(
            f"the restore of {manifest.backup_id} is incomplete: " + "; ".join(problems[:5])
        )


def _warn(warnings: list[str]) -> int:
    """Show `warnings`; how many were shown."""
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    return len(warnings)


def _identities(encryption: EncryptionConfig) -> list[Identity]:
    """`encryption.identity`, or the Prefect Secret block `encryption.identity_block`."""
    if encryption.identity is None and encryption.identity_block:
        from tasks.encryption import load_identity  # Prefect only when a block is named

        return identities_of(load_identity(encryption))
    return encryption.identities()


def _refuse_non_empty(conn: SurrealConnection, targets: list[tuple[str, str]]) -> None:
    """Check every target before restoring any, so that a refusal never leaves half a restore."""
    occupied = []
    for ns, db in targets:
        if not conn.database_exists(ns, db):
            continue  # and do not select it: selecting a database creates it
        conn.use(ns, db)
        if not database_is_empty(conn)[0]:
            occupied.append(f"{ns}/{db}")
    if occupied:
        raise UsageError(
            f"cannot restore into databases that are not empty: {', '.join(occupied)} on {conn.display_url}; "
            "restore into another SurrealDB, or beside them with --ns-prefix"
        )


def _show(backup_id: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"restore of {backup_id}")
    for column in ("database", "into", "records", "download", "import", "verified"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            table.add_row(row["database"], row["into"], "", "", "", f"[red]{row['error']}[/]")
            continue
        table.add_row(
            row["database"],
            row["into"],
            f"{row['records']:,}",
            f"{row['download_seconds']:.2f}s",
            f"{row['import_seconds']:.2f}s",
            "[green]yes[/]" if row["ok"] else "[red]NO[/]",
        )
    err.print(table)
