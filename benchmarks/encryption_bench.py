"""Encryption benchmark (issue 9): the cost of age encryption in the whole backup.

On the backup benchmark's data (a seeded instance: control plane, job queue, one Context with
384-wide embeddings, at the same two sizes), the whole backup to moto's S3 server over HTTP,
plain and encrypted to one age recipient, alternated for a few rounds (the machine is shared:
alternating spreads other load over both). Each backup runs in its own process. Also timed:
the encryption stage alone, the largest compressed object pushed through the backup's
encrypting writer into a sink that only hashes. Target: encryption costs at most 10% of the
backup's wall time.
"""

from __future__ import annotations

import os
import shutil
import statistics

from benchmarks.harness import WORK, run_phase, write_result
from tests.s3server import S3_TEST_ENV, moto_s3_server

SCALES = [float(s) for s in os.environ.get("BENCH_BACKUP_SCALES", "50,200").split(",")]
ROUNDS = int(os.environ.get("BENCH_ENCRYPTION_ROUNDS", "4"))


def _recipient() -> str:
    from pyrage import x25519

    return str(x25519.Identity.generate().to_public())  # the private key is thrown away


def measure(scale: float, endpoint: str, recipient: str) -> dict:
    import boto3

    work = WORK / f"encryption-{scale:g}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = f"surrealkv://{work / 'source'}"
    seeded = run_phase("benchmarks.dump_phases", "seed", source, str(scale))
    bucket = f"bench-encryption-{int(scale)}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    target = f"s3://{bucket}/prod"
    plain, encrypted = [], []
    for _ in range(ROUNDS):
        for runs, extra in ((plain, ()), (encrypted, (recipient,))):
            phase = run_phase(
                "benchmarks.backup_phases", "backup", source, target, endpoint, *extra
            )
            runs.append(phase)
    largest = max(
        (key for key in plain[-1].output["keys"]),
        key=lambda k: s3.head_object(Bucket=bucket, Key=f"prod/{k}")["ContentLength"],
    )
    alone = run_phase(
        "benchmarks.backup_phases", "encrypt-object", target, endpoint, largest, recipient
    )
    shutil.rmtree(work, ignore_errors=True)

    def seconds(runs: list) -> list[float]:
        return [round(r.output["seconds"], 2) for r in runs]

    def cpu(runs: list) -> list[float]:
        return [round(r.cpu_seconds, 2) for r in runs]

    p, e = seconds(plain), seconds(encrypted)
    p_med, e_med = statistics.median(p), statistics.median(e)
    pc, ec = cpu(plain), cpu(encrypted)
    pc_med, ec_med = statistics.median(pc), statistics.median(ec)
    out = plain[-1].output
    a = alone.output
    row = {
        "scale": scale,
        "records": out["records"],
        "seeded_records": seeded.output["records"],
        "raw_mb": round(out["raw_bytes"] / 1e6, 1),
        "stored_mb_plain": round(out["stored_bytes"] / 1e6, 1),
        "stored_mb_encrypted": round(encrypted[-1].output["stored_bytes"] / 1e6, 1),
        "backup_seconds_plain": p,
        "backup_seconds_encrypted": e,
        "median_plain": p_med,
        "median_encrypted": e_med,
        "overhead_median": round((e_med - p_med) / p_med, 3),
        "overhead_min": round((min(e) - min(p)) / min(p), 3),
        "cpu_seconds_plain": pc,
        "cpu_seconds_encrypted": ec,
        "extra_cpu_seconds_median": round(ec_med - pc_med, 2),
        "extra_cpu_vs_plain_wall": round((ec_med - pc_med) / p_med, 3),
        "peak_rss_mb_plain": [round(r.peak_rss_mb) for r in plain],
        "peak_rss_mb_encrypted": [round(r.peak_rss_mb) for r in encrypted],
        "encryption_alone": {
            "object": largest,
            "mb": round(a["bytes"] / 1e6, 1),
            "seconds": round(a["seconds"], 3),
            "mb_per_s": round(a["bytes"] / 1e6 / a["seconds"], 1),
            "share_of_plain_backup": round(a["seconds"] / p_med, 3),
        },
    }
    print(
        f"scale {scale:g}: {row['records']:,} records, backup plain {p} s, encrypted {e} s, "
        f"overhead {row['overhead_median']:.1%} (median) / {row['overhead_min']:.1%} (min); "
        f"CPU plain {pc} s, encrypted {ec} s; "
        f"encryption alone {row['encryption_alone']['mb_per_s']} MB/s",
        flush=True,
    )
    return row


def main() -> None:
    os.environ.update(S3_TEST_ENV)
    recipient = _recipient()
    load_before = os.getloadavg()
    with moto_s3_server() as endpoint:
        runs = [measure(scale, endpoint, recipient) for scale in SCALES]
    load_after = os.getloadavg()
    largest = max(runs, key=lambda r: r["records"])
    result = {
        "target": "moto S3 server on 127.0.0.1 (real HTTP, multipart); zstd level 3, all cores; "
        "age (X25519, ChaCha20-Poly1305) to one recipient via pyrage 1.4.0",
        "rounds": ROUNDS,
        "note": "wall times spread with whatever else runs on the machine (see conditions and "
        "the load averages): plain and encrypted backups are alternated and their "
        "medians (and minima) compared; CPU seconds (user + system, all threads) of each "
        "backup process are given too, as they depend less on other load",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "runs": runs,
        "targets": {
            "encryption_overhead": {
                "value": largest["overhead_median"],
                "target": "<= 0.10 of backup wall time",
                "met": largest["overhead_median"] <= 0.10,
                "records": largest["records"],
                "min_to_min": largest["overhead_min"],
                "extra_cpu_vs_plain_wall": largest["extra_cpu_vs_plain_wall"],
                "encryption_alone_vs_plain_wall": largest["encryption_alone"][
                    "share_of_plain_backup"
                ],
            }
        },
    }
    print(f"wrote {write_result('encryption', result)}")


if __name__ == "__main__":
    main()
