"""Backup benchmark (issue 3): the whole backup against the export alone, at two sizes.

For a seeded instance (control plane, job queue, one Context with 384-wide embeddings) at two
sizes, one 4x the other (the larger >= 200,000 records): the export alone of every database
to plain files, and the whole backup (export -> zstd -> sha256 -> multipart upload to moto's
S3 server on 127.0.0.1, then the manifest). Each phase runs in its own process; peak RSS is
that process's own. Target: backup time <= 1.3x export time; RSS flat across the two sizes.
"""

from __future__ import annotations

import os
import shutil

from benchmarks.harness import WORK, run_phase, write_result
from tests.s3server import S3_TEST_ENV, moto_s3_server

SCALES = [float(s) for s in os.environ.get("BENCH_BACKUP_SCALES", "50,200").split(",")]


def measure(scale: float, endpoint: str) -> dict:
    work = WORK / f"backup-{scale:g}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "dumps").mkdir(parents=True)
    source = f"surrealkv://{work / 'source'}"
    seeded = run_phase("benchmarks.dump_phases", "seed", source, str(scale))
    export = run_phase("benchmarks.backup_phases", "export-all", source, str(work / "dumps"))
    bucket = f"bench-{int(scale)}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    backup = run_phase(
        "benchmarks.backup_phases", "backup", source, f"s3://{bucket}/prod", endpoint
    )
    shutil.rmtree(work, ignore_errors=True)
    b, e = backup.output, export.output
    print(
        f"scale {scale:g}: {b['records']:,} records, export {e['seconds']:.1f}s, backup {b['seconds']:.1f}s, backup RSS {backup.peak_rss_mb:.0f} MB",
        flush=True,
    )
    return {
        "scale": scale,
        "records": b["records"],
        "seeded_records": seeded.output["records"],
        "export_alone": {
            "seconds": round(e["seconds"], 2),
            "records_per_s": round(e["records"] / e["seconds"]),
            "mb_per_s": round(e["bytes"] / 1e6 / e["seconds"], 1),
            "peak_rss_mb": round(export.peak_rss_mb),
            "rss_after_opening_the_store_mb": e["rss_after_open_mb"],
        },
        "backup": {
            "seconds": round(b["seconds"], 2),
            "records_per_s": round(b["records"] / b["seconds"]),
            "raw_mb": round(b["raw_bytes"] / 1e6, 1),
            "stored_mb": round(b["stored_bytes"] / 1e6, 1),
            "compression_ratio": round(b["raw_bytes"] / b["stored_bytes"], 2),
            "raw_mb_per_s": round(b["raw_bytes"] / 1e6 / b["seconds"], 1),
            "peak_rss_mb": round(backup.peak_rss_mb),
            "rss_after_opening_the_store_mb": b["rss_after_open_mb"],
            "rss_growth_during_backup_mb": round(backup.peak_rss_mb - b["rss_after_open_mb"]),
        },
        "backup_vs_export": round(b["seconds"] / e["seconds"], 2),
    }


def main() -> None:
    os.environ.update(S3_TEST_ENV)
    with moto_s3_server() as endpoint:
        runs = [measure(scale, endpoint) for scale in SCALES]
    largest = max(runs, key=lambda r: r["records"])
    smallest = min(runs, key=lambda r: r["records"])
    result = {
        "target": "moto S3 server on 127.0.0.1 (real HTTP, multipart, 16 MiB parts); zstd level 3, all cores",
        "runs": runs,
        "targets": {
            "backup_vs_export": {
                "value": largest["backup_vs_export"],
                "target": "<= 1.3",
                "met": largest["backup_vs_export"] <= 1.3,
            },
            "rss_growth_flat": {
                "small_mb": smallest["backup"]["rss_growth_during_backup_mb"],
                "large_mb": largest["backup"]["rss_growth_during_backup_mb"],
                "size_ratio": round(largest["records"] / smallest["records"], 1),
            },
        },
    }
    print(f"wrote {write_result('backup', result)}")


if __name__ == "__main__":
    main()
