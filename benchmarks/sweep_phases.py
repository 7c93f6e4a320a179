"""Child-process phases of the sweep benchmark; each prints one JSON line.

python -m benchmarks.sweep_phases build DIR ROWS         a Context database of ROWS attributes
python -m benchmarks.sweep_phases index DIR              define the indexes `retention check` advises
python -m benchmarks.sweep_phases bare DIR [literal]     one bare DELETE of the ended attributes
python -m benchmarks.sweep_phases sweep DIR              the expire sweep (then it runs again: no-op)
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spectron_backup.config import SweepFieldsConfig, SweepTablesConfig
from spectron_backup.policies import parse_policies
from spectron_backup.seed import context_schema
from spectron_backup.surreal import connect
from spectron_backup.sweep import datetime_literal, index_advice, sweep_database, sweep_tables

NS, DB = "bench", "context"
NOW = datetime(2026, 11, 24, tzinfo=UTC)
ENTITIES = 1000
ENDED_SHARE = 0.01  # past valid_until: what the sweep deletes
OPEN_SHARE = 0.19  # valid_until in the future; the rest have none
INSERT_BATCH = 5000


def _url(directory: str) -> str:
    return f"surrealkv://{Path(directory).resolve()}"


def build(directory: str, rows: str) -> dict:
    """Attributes over 1,000 entities; every record is 2 days old, so no TTL has elapsed
    (context's default is 7d) and only the 1% whose valid_until has passed are expired."""
    total = int(rows)
    rng = random.Random(7)
    created = datetime_literal(NOW - timedelta(days=2))
    ended = 0
    with connect(_url(directory)) as conn:
        conn.run(f"DEFINE NAMESPACE {NS}; USE NS {NS}; DEFINE DATABASE {DB};")
        conn.use(NS, DB)
        conn.run(context_schema(384))  # the reference schema, temporal_index included
        conn.run(
            "INSERT INTO entity ["
            + ", ".join(
                f"{{id: ['person', 'p{i}'], name: 'p{i}', type: 'person', "
                f"memory_category: 'identity', created_at: {created}}}"
                for i in range(ENTITIES)
            )
            + "]"
        )
        categories = ("identity", "knowledge", "context")
        for start in range(0, total, INSERT_BATCH):
            values = []
            for i in range(start, min(total, start + INSERT_BATCH)):
                draw = rng.random()
                if draw < ENDED_SHARE:
                    ended += 1
                    until = datetime_literal(NOW - timedelta(days=rng.randint(1, 300)))
                elif draw < ENDED_SHARE + OPEN_SHARE:
                    until = datetime_literal(NOW + timedelta(days=rng.randint(1, 300)))
                else:
                    until = "NONE"
                values.append(
                    f"{{id: {i}, entity: entity:['person', 'p{i % ENTITIES}'], key: 'k{i % 37}', "
                    f"value: 'value {i}', memory_category: '{categories[i % 3]}', "
                    f"valid_until: {until}, created_at: {created}}}"
                )
            conn.run("INSERT INTO attribute [" + ", ".join(values) + "]")
    return {"rows": total, "ended": ended}


def index(directory: str) -> dict:
    with connect(_url(directory)) as conn:
        conn.use(NS, DB)
        advice = []
        tables = (conn.run_one("INFO FOR DB") or {}).get("tables", {})
        for table in sweep_tables(SweepTablesConfig()):
            if table.name in tables:
                info = conn.run_one(f"INFO FOR TABLE {table.name}") or {}
                advice += index_advice(table, info, SweepFieldsConfig())
        started = time.perf_counter()
        conn.run(" ".join(advice))
        return {"seconds": time.perf_counter() - started, "indexes": advice}


def bare(directory: str, literal: str = "") -> dict:
    """`literal`: the issue's words, `valid_until < $now`, which also deletes every record
    without a valid_until (NONE sorts first); otherwise the same records the sweep deletes.
    Through the engine's blocking handle, the faster one for a single query (as the dump
    benchmark's floor): the baseline is the best a bare statement does."""
    condition = "valid_until < $now" if literal else "valid_until != NONE AND valid_until < $now"
    with connect(_url(directory), blocking=True) as conn:
        conn.use(NS, DB)
        started = time.perf_counter()
        deleted = conn.run_one(
            f"DELETE attribute WHERE {condition} RETURN NONE; "
            "SELECT count() FROM attribute GROUP ALL",
            {"now": NOW},
        )
        seconds = time.perf_counter() - started
        left = deleted[0]["count"] if deleted else 0
    return {"seconds": seconds, "query": f"DELETE attribute WHERE {condition}", "left": left}


def sweep(directory: str) -> dict:
    policies = parse_policies([])
    with connect(_url(directory)) as conn:
        started = time.perf_counter()
        report = sweep_database(conn, NS, DB, policies, now=NOW, dry_run=False)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = sweep_database(conn, NS, DB, policies, now=NOW, dry_run=False)
        noop_seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "deleted": report.total_deleted,
        "noop_seconds": noop_seconds,
        "noop_deleted": again.total_deleted,
    }


PHASES = {"build": build, "index": index, "bare": bare, "sweep": sweep}

if __name__ == "__main__":
    print(json.dumps(PHASES[sys.argv[1]](*sys.argv[2:])))
