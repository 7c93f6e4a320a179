"""`spectron-backup demo`: the whole pipeline on an embedded Spectron, from nothing, in one command.

On first run it seeds a small Spectron instance into an embedded surrealkv store (with its
documents in a local document store) and writes a configuration file; every run then backs
the instance up through the Prefect flow `backup` into a local backup target, and restores
every database of that backup into a scratch store, checking sha256, record counts and
content hashes against the manifest. Rerunning adds a backup.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from spectron_backup.commands.options import reports_errors
from spectron_backup.config import load_config
from spectron_backup.console import err
from spectron_backup.errors import OperationFailed
from spectron_backup.repository import Repository
from spectron_backup.restore import restore_database
from spectron_backup.stores import open_store, open_target_store
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

    documents = open_store(f"file://{workdir / 'documents'}")
    with connect(f"surrealkv://{workdir / 'spectron'}") as conn:
        result = seed_instance(conn, SeedPlan(contexts=2, scale=1.0), documents=documents.put_bytes)
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

    from flows.backup import backup

    err.print("[bold]1. backup[/] (Prefect flow `backup`)")
    result = backup(config_path=str(config_path))
    err.print(
        f"   backup {result['backup_id']}: {result['databases']} databases, {result['records']:,} records, "
        f"{result['raw_bytes'] / 1e6:.1f} MB dumped -> {result['bytes'] / 1e6:.1f} MB stored, {result['seconds']:.1f}s"
    )

    err.print(
        "[bold]2. restore check[/]: every database of the backup into a scratch store, verified"
    )
    config = load_config(config_path)
    store = open_target_store(config.target)
    manifest = Repository(store).read_manifest(result["backup_id"])
    scratch = workdir / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    report = Table()
    for column in (
        "database",
        "records",
        "stored",
        "download",
        "import",
        "sha256",
        "counts + hashes",
    ):
        report.add_column(column)
    problems: list[str] = []
    with connect(f"surrealkv://{scratch}") as target:
        for entry in manifest.databases:
            restored = restore_database(store, entry, target)
            problems += [f"{entry.ns}/{entry.db}: {f}" for f in restored.imported.failures]
            problems += [f"{entry.ns}/{entry.db}: {m}" for m in restored.mismatches]
            report.add_row(
                f"{entry.ns}/{entry.db}",
                f"{entry.records:,}",
                f"{entry.bytes / 1e6:.2f} MB",
                f"{restored.download_seconds:.2f}s",
                f"{restored.import_seconds:.2f}s",
                "[green]ok[/]",
                "[green]ok[/]" if restored.ok else "[red]MISMATCH[/]",
            )
    shutil.rmtree(scratch, ignore_errors=True)
    err.print(report)
    if problems:
        raise OperationFailed("the restore check failed: " + "; ".join(problems[:5]))
    err.print(
        f"\nbackups are in {workdir / 'backups'}; the configuration is {config_path}. Next:\n"
        f"  uv run spectron-backup list --config {config_path}\n"
        f"  uv run spectron-backup backup --config {config_path}\n"
        f"  uv run spectron-backup export --source surrealkv://{workdir / 'spectron'} --ns spectron --db metadata"
    )
