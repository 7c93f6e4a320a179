"""Dump engine benchmark (issue 2): export and import throughput and peak RSS.

A seeded Spectron Context database of >= 200,000 records with 384-wide embeddings, on an
embedded surrealkv store. Compared against the bare floor (every record's `<string>` text
read with one query per table in the same kind of process) and against importing the same
statements one per query. Each phase runs in its own process; RSS is that process's peak.
"""

from __future__ import annotations

import os
import shutil

from benchmarks.harness import WORK, run_phase, write_result

SCALE = float(os.environ.get("BENCH_DUMP_SCALE", "200"))


def main() -> None:
    work = WORK / "dump"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = f"surrealkv://{work / 'source'}"
    seeded = run_phase("benchmarks.dump_phases", "seed", source, str(SCALE))
    ns, db = seeded.output["ns"], seeded.output["db"]
    records = seeded.output["records"]
    print(f"seeded {records:,} records in {seeded.output['seconds']:.1f}s", flush=True)

    floor = run_phase("benchmarks.dump_phases", "floor", source, ns, db)
    dump = work / "dump.surql"
    export = run_phase("benchmarks.dump_phases", "export", source, ns, db, str(dump))
    size = export.output["bytes"]
    print(
        f"floor {floor.output['seconds']:.1f}s, export {export.output['seconds']:.1f}s, dump {size / 1e6:.0f} MB, export RSS {export.peak_rss_mb:.0f} MB",
        flush=True,
    )
    imported = run_phase(
        "benchmarks.dump_phases", "import", str(dump), f"surrealkv://{work / 'restored'}", ns, db
    )
    one_by_one = run_phase(
        "benchmarks.dump_phases",
        "import",
        str(dump),
        f"surrealkv://{work / 'restored-1by1'}",
        ns,
        db,
        "--one-by-one",
    )
    print(
        f"import {imported.output['seconds']:.1f}s, one by one {one_by_one.output['seconds']:.1f}s",
        flush=True,
    )

    def rates(phase_seconds: float, n: int, nbytes: int) -> dict:
        return {
            "seconds": round(phase_seconds, 2),
            "records_per_s": round(n / phase_seconds),
            "mb_per_s": round(nbytes / 1e6 / phase_seconds, 1),
        }

    result = {
        "data": {
            "records": records,
            "embedding_width": 384,
            "tables": seeded.output["tables"],
            "dump_mb": round(size / 1e6, 1),
            "store": "surrealkv",
        },
        "floor": {
            **rates(floor.output["seconds"], floor.output["records"], floor.output["chars"]),
            "peak_rss_mb": round(floor.peak_rss_mb),
        },
        "export": {
            **rates(export.output["seconds"], export.output["records"], size),
            "peak_rss_mb": round(export.peak_rss_mb),
            "rss_after_opening_the_store_mb": export.output["rss_after_open_mb"],
            "rss_growth_during_export_mb": round(
                export.peak_rss_mb - export.output["rss_after_open_mb"]
            ),
        },
        "import_batched": {
            **rates(imported.output["seconds"], imported.output["records"], size),
            "peak_rss_mb": round(imported.peak_rss_mb),
            "failed": imported.output["failed"],
        },
        "import_one_by_one": {
            **rates(one_by_one.output["seconds"], one_by_one.output["records"], size),
            "peak_rss_mb": round(one_by_one.peak_rss_mb),
        },
    }
    export_vs_floor = result["export"]["records_per_s"] / result["floor"]["records_per_s"]
    result["targets"] = {
        "export_rate_vs_floor": {
            "value": round(export_vs_floor, 2),
            "target": ">= 0.8",
            "met": export_vs_floor >= 0.8,
        },
        "export_peak_rss_mb": {
            "value": result["export"]["peak_rss_mb"],
            "dump_mb": result["data"]["dump_mb"],
            "target": "<= 300 with a dump > 500 MB",
            "met": result["export"]["peak_rss_mb"] <= 300 and size > 500e6,
        },
        "import_faster_than_one_by_one": {
            "batched_s": result["import_batched"]["seconds"],
            "one_by_one_s": result["import_one_by_one"]["seconds"],
            "met": result["import_batched"]["seconds"] < result["import_one_by_one"]["seconds"],
        },
    }
    path = write_result("dump", result)
    print(f"wrote {path}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
