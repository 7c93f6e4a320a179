"""Helpers for the dump tests: fresh embedded databases, their records and schema, round trips.

The helpers are plain functions (usable from hypothesis tests, which must not depend on
function-scoped state) exposed to the tests as fixtures, so that no test module has to
import this conftest by name.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from spectron_backup.dump.export import ExportSummary, export_database
from spectron_backup.dump.importer import ImportSummary, import_dump
from spectron_backup.surreal import SurrealConnection, connect, surreal_identifier

NS = "test"
DB = "test"

ORACLE_DIR = Path(__file__).resolve().parent.parent / "oracle"
FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "surreal-3.0.2-export"


def new_mem_db(ns: str = NS, db: str = DB) -> SurrealConnection:
    """A fresh, empty in-memory engine with `ns`/`db` selected (every `mem://` is its own)."""
    conn = connect("mem://")
    conn.use(ns, db)
    return conn


def records_of(conn: SurrealConnection) -> dict[str, list[str]]:
    """{table: sorted `<string> $this` of every record} for every table of INFO FOR DB."""
    info = conn.run_one("INFO FOR DB") or {}
    out: dict[str, list[str]] = {}
    for table in sorted(info.get("tables") or {}):
        texts = conn.run_one(f"SELECT VALUE <string> $this FROM {surreal_identifier(table)}") or []
        out[table] = sorted(texts)
    return out


def schema_of(conn: SurrealConnection) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(INFO FOR DB, {table: INFO FOR TABLE})."""
    info = conn.run_one("INFO FOR DB") or {}
    tables = {
        table: conn.run_one(f"INFO FOR TABLE {surreal_identifier(table)}") or {}
        for table in sorted(info.get("tables") or {})
    }
    return info, tables


class RoundTrip(NamedTuple):
    conn: SurrealConnection  # the restored database (a fresh mem:// engine)
    exported: ExportSummary
    imported: ImportSummary
    dump: str


def roundtrip(
    conn: SurrealConnection, ns: str = NS, db: str = DB, *, batch_size: int | None = None
) -> RoundTrip:
    """Export `ns`/`db` of `conn` into memory and import it into a fresh mem:// engine."""
    out = io.BytesIO()
    kwargs = {} if batch_size is None else {"batch_size": batch_size}
    exported = export_database(conn, ns, db, out, **kwargs)
    dump = out.getvalue().decode("utf-8")
    restored = connect("mem://")
    imported = import_dump(restored, ns, db, io.StringIO(dump, newline=""))
    return RoundTrip(restored, exported, imported, dump)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def mem_db() -> Iterator[Callable[..., SurrealConnection]]:
    """A factory of fresh mem:// connections (ns/db selected), closed after the test."""
    opened: list[SurrealConnection] = []

    def factory(ns: str = NS, db: str = DB) -> SurrealConnection:
        conn = new_mem_db(ns, db)
        opened.append(conn)
        return conn

    yield factory
    for conn in opened:
        conn.close()


@pytest.fixture(name="new_mem_db", scope="session")
def _new_mem_db_fixture() -> Callable[..., SurrealConnection]:
    """`new_mem_db(ns, db)` for hypothesis tests: the caller closes it (use it in `with`)."""
    return new_mem_db


@pytest.fixture(name="records_of", scope="session")
def _records_of_fixture() -> Callable[[SurrealConnection], dict[str, list[str]]]:
    return records_of


@pytest.fixture(name="schema_of", scope="session")
def _schema_of_fixture() -> Callable[..., tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
    return schema_of


@pytest.fixture(name="roundtrip", scope="session")
def _roundtrip_fixture() -> Callable[..., RoundTrip]:
    """`roundtrip(conn, ns, db)`; the caller closes the returned `.conn` (use it in `with`)."""
    return roundtrip


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURE_DIR


@pytest.fixture(scope="session")
def oracle_dir() -> Path:
    """tests/oracle, ready to run `node oracle.mjs ...` in it.

    Skips only when node itself is missing; a checkout without `npm ci` is a setup error
    and fails loudly, so that the oracle comparison is never skipped silently in CI.
    """
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the SurrealDB oracle tests need node 20")
    if not (ORACLE_DIR / "node_modules" / "@surrealdb" / "node").is_dir():
        pytest.fail(
            f"{ORACLE_DIR}/node_modules is missing: run `npm ci` in tests/oracle "
            "(the SurrealDB oracle tests need @surrealdb/node)"
        )
    return ORACLE_DIR
