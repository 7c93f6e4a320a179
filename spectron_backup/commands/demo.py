"""`spectron-backup demo`: the whole pipeline on an embedded Spectron, from nothing, in one command.

On first run it seeds a small Spectron instance into an embedded surrealkv store (with its
documents in a local document store) and writes a configuration file; every run then backs
the instance up through the Prefect flow `backup` into a local backup target, and runs the
restore drill (flow `restore-drill`) on that backup: every database restored into a
temporary scratch store and validated (sha256, counts and hashes against the manifest,
Spectron's expectations, documents present in the document store), then an expire sweep
dry run (flow `expire-sweep`): what memory a real sweep would delete. Rerunning adds a backup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spectron_backup.commands.options import reports_errors
from spectron_backup.console import err
from spectron_backup.errors import OperationFailed, SpectronBackupError, UsageError
from spectron_backup.stores import open_store
from spectron_backup.surreal import connect

CONFIG = """\
# Written by `spectron-backup demo`: an embedded Spectron and local stores.
source:
  url: surrealkv://{store}
target:
  url: file://{backups}
documents:
  url: file://{documents}
backups:
  parallelism: 2
"""


def _seed(workdir: Path) -> None:
    from spectron_backup.seed import SeedPlan, seed_instance

    documents = open_store(f"file://{workdir / 'documents'}", setting="documents")
    with connect(f"surrealkv://{workdir / 'spectron'}") as conn:
        result = seed_instance(conn, SeedPlan(contexts=2, scale=1.0), documents=documents)
    err.print(
        f"seeded a Spectron instance: {len(result.contexts)} Contexts, {result.total_records:,} records, {result.documents} documents"
    )


@reports_errors
def command(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the demo keeps its stores, backups and config.")
    ] = Path(".demo"),
) -> None:
    """Run the pipeline end to end on an embedded Spectron instance (created on first run)."""
    workdir = workdir.resolve()
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} is a file: name a directory (it is created)")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    if not (workdir / "spectron").exists():
        _seed(workdir)
    else:
        err.print(f"using the Spectron instance seeded in {workdir / 'spectron'}")
    config_path.write_text(
        CONFIG.format(
            store=workdir / "spectron", backups=workdir / "backups", documents=workdir / "documents"
        )
    )

    from spectron_backup.commands.flow_console import flow_console

    with flow_console():  # the tool's errors on one line, and a prompt Ctrl-C
        _pipeline(workdir, config_path)
    err.print(
        f"\nbackups are in {workdir / 'backups'}; the configuration is {config_path}. Next:\n"
        f"  uv run spectron-backup list --config {config_path}\n"
        f"  uv run spectron-backup backup --config {config_path}\n"
        f"  uv run spectron-backup drill --config {config_path} --backup random\n"
        f"  uv run spectron-backup expire --config {config_path} --dry-run\n"
        f"  uv run spectron-backup export --source surrealkv://{workdir / 'spectron'} --ns spectron --db metadata"
    )


def _pipeline(workdir: Path, config_path: Path) -> None:
    """The three flows, each summed up in a few lines."""
    from flows.backup import backup

    err.print("[bold]1. backup[/] (Prefect flow `backup`)")
    result = backup(config_path=str(config_path))
    err.print(
        f"   backup {result['backup_id']}: {result['databases']} databases, {result['records']:,} records, "
        f"{result['raw_bytes'] / 1e6:.1f} MB dumped -> {result['bytes'] / 1e6:.1f} MB stored, {result['seconds']:.1f}s"
    )

    from flows.drill import restore_drill

    err.print(
        "[bold]2. restore drill[/] (Prefect flow `restore-drill`): the backup restored into a "
        "scratch store and validated"
    )
    state = restore_drill(
        config_path=str(config_path), backup=result["backup_id"], return_state=True
    )
    if state.is_completed():
        record, failure = state.result(), None
    else:
        failure = state.result(raise_on_failure=False)
        record = getattr(failure, "record", None)
    if record:
        checks = record["checks"]
        verdict = "[green]passed[/]" if record["passed"] else "[red]FAILED[/]"
        err.print(
            f"   drill {verdict}: {len(record['databases'])} databases, {record['records']:,} records, "
            f"{sum(c['passed'] for c in checks)} of {len(checks)} checks passed; restore "
            f"{record['restore_seconds']:.1f}s, validation {record['validation_seconds']:.1f}s"
        )
        for line in record["failures"][:5]:
            err.print(f"   [red]x[/] {line}", soft_wrap=True)
    if failure is not None:
        if isinstance(failure, SpectronBackupError):
            raise failure
        raise OperationFailed(f"the restore drill failed: {failure}")

    from flows.expire import expire_sweep

    err.print(
        "[bold]3. expire sweep, dry run[/] (Prefect flow `expire-sweep`): the memory past its "
        "valid_until or TTL that a real sweep would delete"
    )
    # forced: a dry run deletes nothing, and the guard's verdict is printed below instead of
    # failing the demo (the seeded data is old enough for the guard to object)
    sweep = expire_sweep(config_path=str(config_path), dry_run=True, force=True)
    err.print(
        f"   would delete {sweep['deleted_total']:,} records in {len(sweep['databases'])} "
        f"Context databases, {sweep['held_total']:,} expired entities held; nothing deleted "
        f"(report: {sweep['stored_as']})"
    )
    for database in sweep["databases"]:
        for over in database["forced_past_guard"]:
            err.print(
                f"   [yellow]guard:[/] {database['namespace']}/{database['database']}: "
                f"{over['table']}: {over['would_delete']:,} of {over['total']:,} records have "
                f"expired, more than sweep.max_delete_fraction ({over['max_delete_fraction']:g});"
                " a real sweep needs --force",
                soft_wrap=True,
            )
