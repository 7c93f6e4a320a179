"""Child-process phases of the dump benchmark; each prints one JSON line.

python -m benchmarks.dump_phases seed STORE_URL SCALE
python -m benchmarks.dump_phases floor STORE_URL NS DB
python -m benchmarks.dump_phases export STORE_URL NS DB OUT
python -m benchmarks.dump_phases import DUMP STORE_URL NS DB [--one-by-one]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from spectron_backup.surreal import connect, surreal_identifier


def seed(url: str, scale: str) -> dict:
    from spectron_backup.seed import SeedPlan, seed_instance

    with connect(url) as conn:
        started = time.perf_counter()
        result = seed_instance(conn, SeedPlan(contexts=1, scale=float(scale), seed=7))
        seconds = time.perf_counter() - started
    ctx = result.contexts[0]
    key = f"{ctx.namespace}/{ctx.database}"
    return {
        "seconds": seconds,
        "ns": ctx.namespace,
        "db": ctx.database,
        "records": sum(result.records[key].values()),
        "tables": result.records[key],
    }


def floor(url: str, ns: str, db: str) -> dict:
    """The bare floor: every record's text, one query per table, no paging, nothing written;
    through the engine's blocking handle, the faster one for a query at a time."""
    with connect(url, must_exist=True, blocking=True) as conn:
        conn.use(ns, db)
        started = time.perf_counter()
        records = chars = 0
        for table in sorted((conn.run_one("INFO FOR DB") or {}).get("tables", {})):
            texts = conn.run_one(f"SELECT VALUE <string> $this FROM {surreal_identifier(table)}")
            records += len(texts)
            chars += sum(len(t) for t in texts)
            del texts
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "records": records, "chars": chars}


def rss_mb() -> float:
    """Resident memory now (not the peak)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def export(url: str, ns: str, db: str, out: str) -> dict:
    from spectron_backup.atomic import atomic_binary_writer
    from spectron_backup.dump.export import export_database

    with connect(url, must_exist=True) as conn:
        conn.use(ns, db)
        conn.run_one("INFO FOR DB")
        opened = rss_mb()  # the engine with the store open, before the export reads anything
        started = time.perf_counter()
        with atomic_binary_writer(Path(out)) as fp:
            summary = export_database(conn, ns, db, fp)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "records": summary.records,
        "bytes": Path(out).stat().st_size,
        "rss_after_open_mb": round(opened),
    }


def import_(dump: str, url: str, ns: str, db: str, *flags: str) -> dict:
    from spectron_backup.dump.importer import Importer
    from spectron_backup.dump.reader import open_dump

    one_by_one = "--one-by-one" in flags
    with connect(url, blocking=one_by_one) as conn:
        # one by one: each statement its own query, the next sent when it is done, through the
        # engine's blocking handle (the faster one for a query at a time); else the importer's
        # defaults (batches of 64 statements, INSERT batches one per core at once)
        importer = (
            Importer(conn, ns, db, batch_statements=1, workers=1)
            if one_by_one
            else Importer(conn, ns, db)
        )
        importer.prepare_target()
        started = time.perf_counter()
        with open_dump(Path(dump)) as fp:
            summary = importer.import_file(fp)
        seconds = time.perf_counter() - started
        records = 0
        for table in (conn.run_one("INFO FOR DB") or {}).get("tables", {}):
            records += (
                conn.run_one(f"RETURN count(SELECT id FROM {surreal_identifier(table)})") or 0
            )
    return {
        "seconds": seconds,
        "statements": summary.statements,
        "workers": importer.workers,
        "failed": len(summary.failures),
        "records": records,
    }


PHASES = {"seed": seed, "floor": floor, "export": export, "import": import_}

if __name__ == "__main__":
    print(json.dumps(PHASES[sys.argv[1]](*sys.argv[2:])))
