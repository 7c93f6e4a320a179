"""Restore drill benchmark (issue 5): a seeded instance of >= 100,000 records, drilled.

Reports the drill's wall time split into download (with sha256), decompress + import, index
build and validation, with records/s for each. The index build is measured as the difference
between the import with the dump's HNSW indexes (defined before the data, as exported) and
the same import without them. Target: validation at most 25% of the drill's wall time.
"""

from __future__ import annotations

import os
import shutil

from benchmarks.harness import WORK, run_phase, write_result

SCALE = float(os.environ.get("BENCH_DRILL_SCALE", "100"))


def main() -> None:
    work = WORK / "drill"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    setup = run_phase("benchmarks.drill_phases", "setup", str(work), str(SCALE))
    drill = run_phase("benchmarks.drill_phases", "drill", str(work))
    plain = run_phase("benchmarks.drill_phases", "import-no-vectors", str(work))
    shutil.rmtree(work, ignore_errors=True)
    d = drill.output
    records = d["records"]
    index_build = max(0.0, d["import_seconds"] - plain.output["seconds"])
    share = d["validation_seconds"] / d["seconds"]

    def part(seconds: float) -> dict:
        return {
            "seconds": round(seconds, 2),
            "records_per_s": round(records / seconds) if seconds else None,
        }

    result = {
        "data": {
            "records": setup.output["records"],
            "stored_mb": round(setup.output["stored_bytes"] / 1e6, 1),
            "raw_mb": round(setup.output["raw_bytes"] / 1e6, 1),
            "embedding_width": 384,
        },
        "drill": {
            "seconds": round(d["seconds"], 2),
            "passed": d["passed"],
            "checks": d["checks"],
            "peak_rss_mb": round(drill.peak_rss_mb),
            "failures": d["failures"],
        },
        "download_and_sha256": part(d["download_seconds"]),
        "decompress_and_import_with_inline_indexes": part(d["import_seconds"]),
        "same_import_without_vector_indexes": part(plain.output["seconds"]),
        "index_build_estimate": {
            "seconds": round(index_build, 2),
            "note": "import with HNSW indexes minus import without",
        },
        "validation": part(d["validation_seconds"]),
        "targets": {
            "validation_share_of_drill": {
                "value": round(share, 3),
                "target": "<= 0.25",
                "met": share <= 0.25,
            }
        },
    }
    print(
        f"drill {d['seconds']:.1f}s (passed={d['passed']}): download {d['download_seconds']:.1f}s, import {d['import_seconds']:.1f}s (without vector indexes {plain.output['seconds']:.1f}s), validation {d['validation_seconds']:.1f}s = {share:.0%}",
        flush=True,
    )
    print(f"wrote {write_result('drill', result)}")


if __name__ == "__main__":
    main()
