"""Child-process phases of the drill benchmark; each prints one JSON line.

python -m benchmarks.drill_phases setup WORKDIR SCALE     seed + documents + one backup
python -m benchmarks.drill_phases drill WORKDIR           the restore drill, timed by phase
python -m benchmarks.drill_phases import-no-vectors WORKDIR  the Context's dump without its HNSW indexes
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from spectron_backup.surreal import connect


def setup(workdir: str, scale: str) -> dict:
    from spectron_backup.backup import backup_instance
    from spectron_backup.config import SourceConfig
    from spectron_backup.seed import SeedPlan, seed_instance
    from spectron_backup.stores import open_store

    root = Path(workdir)
    documents = open_store(f"file://{root / 'documents'}")
    store = open_store(f"file://{root / 'target'}")
    source = f"surrealkv://{root / 'source'}"
    with connect(source) as conn:
        seeded = seed_instance(
            conn, SeedPlan(contexts=1, scale=float(scale), seed=5), documents=documents
        )
        manifest = backup_instance(conn, store, SourceConfig(url=source))
    return {
        "records": seeded.total_records,
        "backup_id": manifest.backup_id,
        "stored_bytes": manifest.bytes,
        "raw_bytes": manifest.raw_bytes,
    }


def drill(workdir: str) -> dict:
    from spectron_backup.drill import run_drill
    from spectron_backup.repository import Repository
    from spectron_backup.stores import open_store

    root = Path(workdir)
    store = open_store(f"file://{root / 'target'}")
    documents = open_store(f"file://{root / 'documents'}")
    manifest = Repository(store).intact_backups()[-1].manifest
    assert manifest is not None
    started = time.perf_counter()
    report = run_drill(store, manifest, documents=documents, scratch_root=str(root))
    seconds = time.perf_counter() - started
    record = report.to_record()
    return {
        "seconds": seconds,
        "passed": record["passed"],
        "failures": record["failures"][:5],
        "records": record["records"],
        "download_seconds": record["download_seconds"],
        "import_seconds": sum(d["import_seconds"] for d in record["databases"]),
        "validation_seconds": record["validation_seconds"],
        "checks": len(record["checks"]),
    }


def import_no_vectors(workdir: str) -> dict:
    """Decompress and import the Context's dump with its HNSW index definitions left out."""
    from spectron_backup.dump.importer import Importer
    from spectron_backup.dump.splitter import iter_statements_from_file
    from spectron_backup.repository import Repository
    from spectron_backup.restore import dump_text, fetch_verified
    from spectron_backup.stores import open_store

    root = Path(workdir)
    store = open_store(f"file://{root / 'target'}")
    manifest = Repository(store).intact_backups()[-1].manifest
    assert manifest is not None
    entry = max(manifest.databases, key=lambda d: d.records)
    with (
        tempfile.TemporaryDirectory(dir=root) as scratch,
        connect(f"surrealkv://{scratch}/s") as conn,
    ):
        importer = Importer(conn, entry.ns, entry.db)
        importer.prepare_target()
        with fetch_verified(store, entry) as blob, dump_text(blob) as text:
            started = time.perf_counter()
            statements = (s for s in iter_statements_from_file(text) if " HNSW " not in s.text)
            summary = importer.import_statements(statements)
            seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": entry.records, "failed": len(summary.failures)}


PHASES = {"setup": setup, "drill": drill, "import-no-vectors": import_no_vectors}

if __name__ == "__main__":
    print(json.dumps(PHASES[sys.argv[1]](*sys.argv[2:])))
