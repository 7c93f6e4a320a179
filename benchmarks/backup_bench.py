"""Backup benchmark (issue 3): the whole backup against the export alone, at two sizes.

For a seeded instance (control plane, job queue, one Context with 384-wide embeddings) at two
sizes, one 4x the other (the larger >= 200,000 records): the export alone of every database
to plain files, and the whole backup (export -> zstd -> sha256 -> multipart upload to moto's
S3 server on 127.0.0.1, then the manifest), alternated and compared by their medians; then
one backup as in a container with 2 GiB of memory (the engine sizes its cache from that), and
one to a local directory, which shows the pipeline without the S3 server's share of these
two cores. Each phase runs in its own process; peak RSS is that process's own.
Target: backup time <= 1.3x export time; RSS flat across the two sizes.
"""

from __future__ import annotations

import os
import shutil

from benchmarks.harness import WORK, median, run_in_container, run_phase, write_result
from tests.s3server import S3_TEST_ENV, moto_s3_server

SCALES = [float(s) for s in os.environ.get("BENCH_BACKUP_SCALES", "50,200").split(",")]
REPEATS = int(os.environ.get("BENCH_BACKUP_REPEATS", "3"))


def measure(scale: float, endpoint: str) -> dict:
    work = WORK / f"backup-{scale:g}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "dumps").mkdir(parents=True)
    source = f"surrealkv://{work / 'source'}"
    seeded = run_phase("benchmarks.dump_phases", "seed", source, str(scale))
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    # Alternated, so a slow spell of the (shared) machine hits both sides; medians compared.
    exports, backups = [], []
    for run in range(REPEATS):
        exports.append(
            run_phase("benchmarks.backup_phases", "export-all", source, str(work / "dumps"))
        )
        bucket = f"bench-{int(scale)}-{run}"
        s3.create_bucket(Bucket=bucket)
        backups.append(
            run_phase("benchmarks.backup_phases", "backup", source, f"s3://{bucket}/prod", endpoint)
        )
    s3.create_bucket(Bucket=f"bench-{int(scale)}-contained")
    in_container = run_in_container(
        "benchmarks.backup_phases",
        "backup",
        source,
        f"s3://bench-{int(scale)}-contained/prod",
        endpoint,
    )
    (work / "local").mkdir()
    local = run_phase("benchmarks.backup_phases", "backup", source, f"file://{work / 'local'}", "")
    shutil.rmtree(work, ignore_errors=True)
    export_s = median([r.output["seconds"] for r in exports])
    backup_s = median([r.output["seconds"] for r in backups])
    completion_s = median([r.output["server_completion_seconds"] for r in backups])
    backup, export = backups[0], exports[0]
    b, e = backup.output, export.output
    print(
        f"scale {scale:g}: {b['records']:,} records, export {export_s:.1f}s, backup {backup_s:.1f}s (S3 completion {completion_s:.1f}s), to a local dir {local.output['seconds']:.1f}s, backup RSS {backup.peak_rss_mb:.0f} MB",
        flush=True,
    )
    return {
        "scale": scale,
        "records": b["records"],
        "seeded_records": seeded.output["records"],
        "export_alone": {
            "seconds": round(export_s, 2),
            "runs_s": [round(r.output["seconds"], 2) for r in exports],
            "records_per_s": round(e["records"] / export_s),
            "mb_per_s": round(e["bytes"] / 1e6 / export_s, 1),
            "peak_rss_mb": round(max(r.peak_rss_mb for r in exports)),
            "rss_after_opening_the_store_mb": e["rss_after_open_mb"],
        },
        "backup": {
            "seconds": round(backup_s, 2),
            "runs_s": [round(r.output["seconds"], 2) for r in backups],
            "records_per_s": round(b["records"] / backup_s),
            "raw_mb": round(b["raw_bytes"] / 1e6, 1),
            "stored_mb": round(b["stored_bytes"] / 1e6, 1),
            "compression_ratio": round(b["raw_bytes"] / b["stored_bytes"], 2),
            "raw_mb_per_s": round(b["raw_bytes"] / 1e6 / backup_s, 1),
            "peak_rss_mb": round(max(r.peak_rss_mb for r in backups)),
            "rss_after_opening_the_store_mb": b["rss_after_open_mb"],
            "rss_growth_during_backup_mb": round(
                max(r.peak_rss_mb for r in backups) - b["rss_after_open_mb"]
            ),
            # after the last part: the server assembles the object, then copies it onto
            # itself to set the late metadata (sha256); moto does both in Python, on these cores
            "server_completion_s": round(completion_s, 2),
        },
        "backup_vs_export": round(backup_s / export_s, 2),
        "backup_before_server_completion_vs_export": round((backup_s - completion_s) / export_s, 2),
        "backup_in_a_memory_limited_container": in_container,
        "backup_to_a_local_directory": {
            "seconds": round(local.output["seconds"], 2),
            "vs_export": round(local.output["seconds"] / export_s, 2),
            "peak_rss_mb": round(local.peak_rss_mb),
        },
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
                "why": "on a bare host the embedded engine's block cache keeps what the export reads",
                "in_container_small_mb": smallest["backup_in_a_memory_limited_container"].get(
                    "peak_rss_mb"
                ),
                "in_container_large_mb": largest["backup_in_a_memory_limited_container"].get(
                    "peak_rss_mb"
                ),
            },
        },
    }
    print(f"wrote {write_result('backup', result)}")


if __name__ == "__main__":
    main()
