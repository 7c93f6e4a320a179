"""`spectron-backup demo`: the tool on an embedded Spectron, from nothing, in one command.

Seeds a small Spectron instance into an embedded surrealkv store on first run, exports every
database of it, imports each dump into a fresh scratch store and checks that every table's
record count and content hash came back. Rerunning reuses the seeded instance.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from spectron_backup.atomic import atomic_text_writer
from spectron_backup.commands.options import reports_errors
from spectron_backup.console import err
from spectron_backup.dump.export import export_database
from spectron_backup.dump.importer import import_dump
from spectron_backup.dump.pages import table_digest
from spectron_backup.dump.reader import open_dump
from spectron_backup.errors import OperationFailed
from spectron_backup.surreal import SurrealConnection, connect


def list_databases(conn: SurrealConnection, control_namespace: str = "spectron") -> list[tuple[str, str]]:
    """Every database of the instance: the control plane, the job queue, each Context's."""
    found = [(ns, db) for ns in conn.namespaces() for db in conn.databases(ns)]
    control = [pair for pair in found if pair[0] == control_namespace]
    return control + [pair for pair in found if pair[0] != control_namespace]


def _seed(store: Path, docs: Path) -> None:
    from spectron_backup.seed import SeedPlan, seed_instance

    docs.mkdir(parents=True, exist_ok=True)

    def write_document(key: str, data: bytes) -> None:
        path = docs / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    with connect(f"surrealkv://{store}") as conn:
        result = seed_instance(conn, SeedPlan(contexts=2, scale=1.0), documents=write_document)
    total = sum(sum(tables.values()) for tables in result.records.values())
    err.print(f"seeded a Spectron instance: {len(result.contexts)} Contexts, {total:,} records, {result.documents} documents")


@reports_errors
def command(
    workdir: Annotated[Path, typer.Option("--workdir", help="Where the demo keeps its stores and dumps.")] = Path(".demo"),
) -> None:
    """Run the tool end to end on an embedded Spectron instance (created on first run)."""
    workdir = workdir.resolve()
    store, docs, dumps, scratch = workdir / "spectron", workdir / "documents", workdir / "dumps", workdir / "scratch"
    if not store.exists():
        _seed(store, docs)
    else:
        err.print(f"using the Spectron instance already seeded in {store}")
    dumps.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(scratch, ignore_errors=True)

    report = Table(title="export -> import -> verify", show_lines=False)
    for column in ("database", "tables", "records", "dump", "export", "import", "verified"):
        report.add_column(column, justify="right" if column not in ("database", "verified") else "left")
    problems: list[str] = []
    with connect(f"surrealkv://{store}") as source, connect(f"surrealkv://{scratch}") as target:
        for ns, db in list_databases(source):
            dump = dumps / f"{ns}__{db}.surql"
            with atomic_text_writer(dump) as out:
                exported = export_database(source, ns, db, out)
            started = time.perf_counter()
            with open_dump(dump) as fp:
                imported = import_dump(target, ns, db, fp)
            import_seconds = time.perf_counter() - started
            mismatched = [
                name
                for name, expected in exported.tables.items()
                if (got := table_digest(target, name)).count != expected.count or got.hexdigest() != expected.hash
            ]
            problems += [f"{ns}/{db}: {failure}" for failure in imported.failures]
            problems += [f"{ns}/{db}: table {name} differs after import" for name in mismatched]
            ok = not imported.failures and not mismatched
            report.add_row(
                f"{ns}/{db}",
                str(len(exported.tables)),
                f"{exported.records:,}",
                f"{dump.stat().st_size / 1e6:.1f} MB",
                f"{exported.seconds:.2f}s",
                f"{import_seconds:.2f}s",
                "[green]yes[/]" if ok else "[red]NO[/]",
            )
    err.print(report)
    err.print(f"dumps in {dumps}; a scratch copy restored in {scratch}")
    if problems:
        raise OperationFailed("; ".join(problems[:5]))
    err.print(
        "next: export one database yourself with\n"
        f"  spectron-backup export --source surrealkv://{store} --ns spectron --db metadata -o metadata.surql"
    )
