"""Child-process phases of the backup benchmark; each prints one JSON line.

python -m benchmarks.backup_phases export-all STORE_URL OUTDIR
python -m benchmarks.backup_phases backup STORE_URL TARGET_URL ENDPOINT [RECIPIENT...]
python -m benchmarks.backup_phases encrypt-object TARGET_URL ENDPOINT KEY RECIPIENT
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks.dump_phases import rss_mb
from spectron_backup.config import SourceConfig
from spectron_backup.discovery import discover
from spectron_backup.surreal import connect


def export_all(url: str, outdir: str) -> dict:
    """Export alone: every database of the instance to plain dump files."""
    from spectron_backup.atomic import atomic_binary_writer
    from spectron_backup.dump.export import export_database

    with connect(url, must_exist=True) as conn:
        refs = discover(conn, SourceConfig(url=url)).databases
        opened = rss_mb()
        started = time.perf_counter()
        records = size = 0
        for ref in refs:
            path = Path(outdir) / f"{ref.ns}__{ref.db}.surql"
            with atomic_binary_writer(path) as out:
                records += export_database(conn, ref.ns, ref.db, out).records
            size += path.stat().st_size
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "records": records,
        "bytes": size,
        "rss_after_open_mb": round(opened),
    }


def backup(url: str, target: str, endpoint: str, *recipients: str) -> dict:
    """The whole backup of every database: export -> zstd -> [age to `recipients`] -> sha256
    -> S3 upload, + manifest."""
    from spectron_backup.backup import backup_instance
    from spectron_backup.stores import open_store

    store = open_store(target, endpoint_url=endpoint or None)
    completion = _time_completion(store)
    with connect(url, must_exist=True) as conn:
        conn.run_one("INFO FOR ROOT")
        opened = rss_mb()
        started = time.perf_counter()
        manifest = backup_instance(conn, store, SourceConfig(url=url), recipients=recipients)
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "server_completion_seconds": sum(completion),
        "records": manifest.records,
        "raw_bytes": manifest.raw_bytes,
        "stored_bytes": manifest.bytes,
        "rss_after_open_mb": round(opened),
        "backup_id": manifest.backup_id,
        "encrypted": manifest.encrypted,
        "keys": [d.key for d in manifest.databases],
    }


#: The requests S3 serves after an object's last part: assembling it, then the server-side
#: copy that sets its late metadata (sha256, raw size); the client only waits.
COMPLETION_REQUESTS = ("complete_multipart_upload", "copy_object", "upload_part_copy")


def _time_completion(store: object) -> list[float]:
    """Durations of the store's completion requests, appended as they happen (S3 only)."""
    durations: list[float] = []
    call = getattr(store, "_call", None)
    if call is None:
        return durations

    def timed(operation: str, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(operation, *args, **kwargs)
        finally:
            if operation in COMPLETION_REQUESTS:
                durations.append(time.perf_counter() - started)

    store._call = timed  # type: ignore[attr-defined]
    return durations


def encrypt_object(target: str, endpoint: str, key: str, recipient: str) -> dict:
    """Encryption alone: an already compressed object read into memory, then pushed through
    the backup's encrypting writer (pyrage in its thread) into a sink that only counts."""
    import io

    from spectron_backup.encryption import encrypting_writer, parse_recipient
    from spectron_backup.stores import open_store
    from spectron_backup.streams import CountingWriter

    class Null(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:  # type: ignore[override]
            return len(data)

    data = open_store(target, endpoint_url=endpoint).get_bytes(key)
    view = memoryview(data)
    sink = CountingWriter(Null())
    started = time.perf_counter()
    with encrypting_writer(sink, [parse_recipient(recipient)]) as writer:
        for start in range(0, len(view), 128 << 10):  # as zstd's stream writer hands it over
            writer.write(view[start : start + (128 << 10)])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "bytes": len(data), "stored_bytes": sink.bytes}


PHASES = {"export-all": export_all, "backup": backup, "encrypt-object": encrypt_object}

if __name__ == "__main__":
    print(json.dumps(PHASES[sys.argv[1]](*sys.argv[2:])))
