"""`spectron-backup list`: the backups in the target, newest first."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import JsonOutput, reports_errors
from spectron_backup.config import load_config
from spectron_backup.console import err, print_json
from spectron_backup.encryption import short_key
from spectron_backup.errors import SpectronBackupError
from spectron_backup.leases import in_use_by, live_leases
from spectron_backup.repository import BackupEntry, Repository
from spectron_backup.stores import open_target_store


def describe(repo: Repository, entry: BackupEntry) -> dict[str, Any]:
    manifest = entry.manifest
    last_drill = None
    if entry.drills:
        at = entry.drills[-1].rsplit("/", 1)[-1].removesuffix(".json")
        try:
            record = repo.read_json(entry.drills[-1])
        except (SpectronBackupError, OSError, ValueError) as exc:
            record = {"problem": f"drill record cannot be read: {exc}"}
        if not isinstance(record, dict):
            record = {"problem": "drill record is not a JSON object"}
        last_drill = {
            "at": record.get("finished_at") or at,
            "passed": record.get("passed") is True,
            "problem": record.get("problem"),
        }
    return {
        "backup_id": entry.backup_id,
        "time": entry.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "complete": entry.complete,
        "tiers": manifest.tiers if manifest else [],
        "databases": len(manifest.databases) if manifest else None,
        "records": manifest.records if manifest else None,
        "bytes": entry.stored_bytes,
        # who can open it: the recipients (public keys) its objects were encrypted to
        "encrypted": manifest.encrypted if manifest else None,
        "recipients": manifest.recipients if manifest else [],
        "last_drill": last_drill,
        "intact": entry.intact,
        "problem": entry.trouble,
        # restores and drills reading it now: prune leaves it whole meanwhile
        "in_use": [lease.summary() for lease in live_leases(repo, [o.key for o in entry.leases])],
    }


@reports_errors
def command(config: ConfigPath = None, json_output: JsonOutput = False) -> None:
    """List backups: id, time, tiers, databases, size, complete or not, who can open it
    (the age recipients it is encrypted to), last drill."""
    settings = load_config(config)
    store = open_target_store(settings.target, must_exist=True)
    repo = Repository(store)
    rows = [describe(repo, entry) for entry in reversed(repo.backups())]
    if json_output:
        print_json({"target": store.url, "backups": rows})
        return
    table = Table(title=f"backups in {store.url}")
    for column in (
        "backup id",
        "time (UTC)",
        "tiers",
        "databases",
        "records",
        "size",
        "complete",
        "encrypted to",
        "last drill",
    ):
        table.add_column(column)
    for row in rows:
        drill = row["last_drill"]
        table.add_row(
            row["backup_id"],
            row["time"],
            ", ".join(row["tiers"]),
            "" if row["databases"] is None else str(row["databases"]),
            "" if row["records"] is None else f"{row['records']:,}",
            f"{row['bytes'] / 1e6:,.1f} MB",
            f"[red]{row['problem']}[/]"
            if row["problem"]
            else "yes"
            if row["complete"]
            else "[yellow]no[/] (no manifest)",
            _recipients(row),
            ""
            if drill is None
            else f"[red]{drill['problem']}[/]"
            if drill["problem"]
            else ("[green]passed[/]" if drill["passed"] else "[red]failed[/]") + f" {drill['at']}",
        )
    err.print(table)
    for row in rows:
        if row["in_use"]:
            err.print(f"[yellow]in use:[/] {row['backup_id']}: {escape(in_use_by(row['in_use']))}")
    if not rows:
        err.print("no backups yet: run `spectron-backup backup`")


def _recipients(row: dict[str, Any]) -> str:
    if row["encrypted"] is None:
        return ""
    if not row["encrypted"]:
        return "[yellow]not encrypted[/]"
    return "\n".join(short_key(r) for r in row["recipients"])
