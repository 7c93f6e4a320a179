"""Expire sweep benchmark (issue 6): 1,000,000 attribute rows, 1% past `valid_until`.

On copies of one built database, without and then with the indexes `retention check`
advises: a single bare DELETE of the ended attributes, and the sweep (which then runs a
second time and finds nothing: the no-op sweep). Targets: the sweep within 3x the bare
DELETE; the no-op sweep with the indexes well under 1 s per million rows.

The issue's bare statement, `DELETE attribute WHERE valid_until < $now`, also deletes every
record without a valid_until (NONE sorts before every datetime), a different and larger
operation; the comparison uses `valid_until != NONE AND valid_until < $now`, which deletes
exactly what the sweep deletes, and the literal statement is timed once for the record.
"""

from __future__ import annotations

import os
import shutil

from benchmarks.harness import WORK, run_phase, write_result

ROWS = int(os.environ.get("BENCH_SWEEP_ROWS", "1000000"))


def main() -> None:
    work = WORK / "sweep"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base = work / "base"
    built = run_phase("benchmarks.sweep_phases", "build", str(base), str(ROWS))
    print(f"built {ROWS:,} attributes in {built.seconds:.0f}s", flush=True)
    runs: dict[str, dict] = {}
    for variant in ("no_index", "index"):
        if variant == "index":
            indexed = run_phase("benchmarks.sweep_phases", "index", str(base))
        copies = {name: work / f"{variant}-{name}" for name in ("bare", "sweep")}
        for copy in copies.values():
            shutil.copytree(base, copy)
        bare = run_phase("benchmarks.sweep_phases", "bare", str(copies["bare"])).output
        swept = run_phase("benchmarks.sweep_phases", "sweep", str(copies["sweep"]))
        s = swept.output
        runs[variant] = {
            "bare_delete_seconds": round(bare["seconds"], 2),
            "bare_delete_query": bare["query"],
            "sweep_seconds": round(s["seconds"], 2),
            "sweep_deleted": s["deleted"],
            "sweep_over_bare": round(s["seconds"] / bare["seconds"], 2),
            "sweep_peak_rss_mb": round(swept.peak_rss_mb),
            "noop_sweep_seconds": round(s["noop_seconds"], 3),
            "noop_sweep_seconds_per_million_rows": round(s["noop_seconds"] * 1e6 / ROWS, 3),
            "left_after_bare": bare["left"],
        }
        print(f"{variant}: {runs[variant]}", flush=True)
        for copy in copies.values():
            shutil.rmtree(copy)
    literal_copy = work / "literal"
    shutil.copytree(base, literal_copy)
    literal = run_phase("benchmarks.sweep_phases", "bare", str(literal_copy), "literal").output
    shutil.rmtree(work, ignore_errors=True)

    with_index, without = runs["index"], runs["no_index"]
    result = {
        "data": {
            "attribute_rows": ROWS,
            "past_valid_until": built.output["ended"],
            "entities": 1000,
            "build_seconds": round(built.seconds, 1),
        },
        "without_indexes": without,
        "with_indexes": {
            **with_index,
            "indexes": indexed.output["indexes"],
            "index_build_seconds": round(indexed.output["seconds"], 1),
        },
        "issue_literal_bare_delete": {
            "query": literal["query"],
            "seconds": round(literal["seconds"], 2),
            "left": literal["left"],
            "note": "also deletes every attribute without a valid_until",
        },
        "targets": {
            "sweep_within_3x_bare_delete": {
                "value": max(with_index["sweep_over_bare"], without["sweep_over_bare"]),
                "target": "<= 3",
                "met": max(with_index["sweep_over_bare"], without["sweep_over_bare"]) <= 3,
            },
            "noop_sweep_with_index_s_per_million": {
                "value": with_index["noop_sweep_seconds_per_million_rows"],
                "target": "well under 1",
                "met": with_index["noop_sweep_seconds_per_million_rows"] < 0.5,
            },
        },
    }
    print(f"wrote {write_result('sweep', result)}")


if __name__ == "__main__":
    main()
