"""Dump engine benchmark (issue 2): export and import throughput and peak RSS.

A seeded Spectron Context database of >= 200,000 records with 384-wide embeddings, on an
embedded surrealkv store. Compared against the bare floor (every record's `<string>` text
read with one query per table in the same kind of process; medians of alternated runs) and
against importing the same statements one per query, each sent when the one before is done
(the importer sends batches of statements, INSERT batches one per core at a time). Each phase
runs in its own process; RSS is that process's peak. The export runs once more as in a 2 GiB container, where the
engine's block cache is sized from the container's limit instead of the host's RAM.
"""

from __future__ import annotations

import os
import shutil

from benchmarks.harness import WORK, median, run_in_container, run_phase, write_result

SCALE = float(os.environ.get("BENCH_DUMP_SCALE", "200"))
REPEATS = int(os.environ.get("BENCH_DUMP_REPEATS", "3"))


def main() -> None:
    work = WORK / "dump"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = f"surrealkv://{work / 'source'}"
    seeded = run_phase("benchmarks.dump_phases", "seed", source, str(SCALE))
    ns, db = seeded.output["ns"], seeded.output["db"]
    records = seeded.output["records"]
    print(f"seeded {records:,} records in {seeded.output['seconds']:.1f}s", flush=True)

    dump = work / "dump.surql"
    # Alternated, so a slow spell of the (shared) machine hits both sides; medians compared.
    floors, exports = [], []
    for _ in range(REPEATS):
        floors.append(run_phase("benchmarks.dump_phases", "floor", source, ns, db))
        exports.append(run_phase("benchmarks.dump_phases", "export", source, ns, db, str(dump)))
    floor_s = median([f.output["seconds"] for f in floors])
    export_s = median([e.output["seconds"] for e in exports])
    export = exports[0]
    size = export.output["bytes"]
    print(
        f"floor {floor_s:.1f}s, export {export_s:.1f}s (medians of {REPEATS}), dump {size / 1e6:.0f} MB, export RSS {max(e.peak_rss_mb for e in exports):.0f} MB",
        flush=True,
    )
    in_container = run_in_container("benchmarks.dump_phases", "export", source, ns, db, str(dump))
    print(f"export as in a container: {in_container}", flush=True)
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
            **rates(floor_s, floors[0].output["records"], floors[0].output["chars"]),
            "runs_s": [round(f.output["seconds"], 2) for f in floors],
            "peak_rss_mb": round(max(f.peak_rss_mb for f in floors)),
        },
        "export": {
            **rates(export_s, export.output["records"], size),
            "runs_s": [round(e.output["seconds"], 2) for e in exports],
            "peak_rss_mb": round(max(e.peak_rss_mb for e in exports)),
            "rss_after_opening_the_store_mb": export.output["rss_after_open_mb"],
            "why_rss_grows": (
                "the engine's block cache keeps the values the export reads; it is sized to "
                "half the memory the engine sees less 1 GiB (the host's RAM here, a "
                "container's limit inside one), and nothing else sets it in this build"
            ),
        },
        "export_in_a_memory_limited_container": in_container,
        "import_batched": {
            **rates(imported.output["seconds"], imported.output["records"], size),
            "peak_rss_mb": round(imported.peak_rss_mb),
            "failed": imported.output["failed"],
            "workers": imported.output["workers"],
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
            "bare_host": result["export"]["peak_rss_mb"],
            "in_container": in_container.get("peak_rss_mb"),
            "dump_mb": result["data"]["dump_mb"],
            "target": "<= 300 with a dump > 500 MB",
            "met_on_bare_host": result["export"]["peak_rss_mb"] <= 300 and size > 500e6,
            "met_in_container": in_container.get("peak_rss_mb", 10**9) <= 300 and size > 500e6,
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
