"""Imports into an on-disk store send INSERT batches several at a time: the records, the
failures and their line numbers are those of an import one statement at a time."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from spectron_backup.dump.importer import Importer
from spectron_backup.dump.reader import open_dump
from spectron_backup.errors import UsageError
from spectron_backup.surreal import SurrealConnection, connect

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "surreal-3.0.2-export"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def import_concurrently(conn: SurrealConnection, ns: str, db: str, text: str | Path, **kwargs: Any):
    """One statement a batch, two batches at a time: as much concurrency as the importer has."""
    importer = Importer(conn, ns, db, workers=2, batch_statements=1, **kwargs)
    importer.prepare_target()
    if isinstance(text, Path):
        with open_dump(text) as fp:
            return importer.import_file(fp)
    return importer.import_file(io.StringIO(text))


@pytest.fixture
def on_disk(tmp_path: Path) -> Iterator[SurrealConnection]:
    with connect(f"surrealkv://{tmp_path / 'store'}") as conn:
        yield conn


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_surreal_export_fixtures_import_concurrently(
    on_disk: SurrealConnection, records_of, key: str
) -> None:
    ns, db = key.split("/")
    summary = import_concurrently(on_disk, ns, db, FIXTURES / f"{ns}__{db}.surql")
    assert summary.ok, summary.failures
    # read back through the same connection: the store is open again for blocking queries
    on_disk.use(ns, db)
    want = {table: data["records"] for table, data in EXPECTED[key]["tables"].items()}
    assert records_of(on_disk) == want


CONCURRENT_DUMP = """OPTION IMPORT;
DEFINE TABLE t SCHEMALESS;
INSERT [ { id: t:1 } ];
INSERT [ { id: t:2, a: } ];
INSERT [ { id: t:3 } ];
INSERT [ { id: t:4, n: <int> 'x' } ];
DEFINE TABLE u SCHEMALESS;
INSERT [ { id: u:1 } ];
INSERT [ { id: u:2 } ];
"""


def test_failures_in_concurrent_batches_are_reported_in_order_with_line_numbers(
    on_disk: SurrealConnection, records_of
) -> None:
    summary = import_concurrently(on_disk, "c", "c", CONCURRENT_DUMP)
    assert [(f.line, f.statement) for f in summary.failures] == [
        (4, "INSERT [ { id: t:2, a: } ]"),
        (6, "INSERT [ { id: t:4, n: <int> 'x' } ]"),
    ]
    assert summary.statements == 8
    on_disk.use("c", "c")
    assert records_of(on_disk) == {
        "t": ["{ id: t:1 }", "{ id: t:3 }"],
        "u": ["{ id: u:1 }", "{ id: u:2 }"],
    }


CONFLICT = (
    "The query was not executed due to a failed transaction. Failed to commit transaction "
    "due to a read or write conflict. This transaction can be retried"
)


def test_a_statement_that_lost_a_write_conflict_is_sent_again(
    on_disk: SurrealConnection, records_of, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine rolls back a statement that lost a write conflict and says it can be retried;
    no dump makes two of its INSERTs conflict on this engine, so the engine's answer is stood
    in for, once, at the edge (the submitted query is not sent that time)."""
    real = on_disk.submitter
    refused: list[str] = []

    def conflicting_once(workers: int):
        submit = real(workers)

        def submit_or_conflict(sql: str) -> Future:
            if "t:3" in sql and not refused:
                refused.append(sql)
                future: Future = Future()
                future.set_result([{"status": "OK"}, {"status": "ERR", "result": CONFLICT}])
                return future
            return submit(sql)

        return submit_or_conflict

    monkeypatch.setattr(on_disk, "submitter", conflicting_once)
    summary = import_concurrently(on_disk, "c", "c", CONCURRENT_DUMP)
    assert refused, "the conflict was never answered"
    assert [f.line for f in summary.failures] == [4, 6]  # the conflict is not one of them
    assert summary.statements == 8
    on_disk.use("c", "c")
    assert records_of(on_disk)["t"] == ["{ id: t:1 }", "{ id: t:3 }"]


def test_an_on_disk_store_stays_held_while_queries_run_concurrently(tmp_path: Path) -> None:
    """The store is opened once, with the handle that can run queries concurrently: it is
    never released in between (another process could take it), and a connection opened
    with the blocking handle (as the benchmarks' baselines are) reads the same data."""
    url = f"surrealkv://{tmp_path / 'store'}"
    with connect(url) as conn:
        conn.use("p", "q")
        conn.run("CREATE t:1, t:2")
        submit = conn.submitter(2)
        assert conn.values(submit("SELECT VALUE id FROM t").result())[-1] is not None
        with pytest.raises(UsageError, match="in use by another process"):
            connect(url)
        with pytest.raises(UsageError, match="in use by another process"):
            connect(url)
    with connect(url, blocking=True) as conn:
        conn.use("p", "q")
        assert conn.run_one("SELECT VALUE <string> id FROM t") == ["t:1", "t:2"]
