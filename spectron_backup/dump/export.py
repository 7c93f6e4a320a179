"""Export one SurrealDB database as a `surreal export`-compatible SurrealQL dump.

The schema comes from `INFO FOR DB` / `INFO FOR TABLE`; records are serialised by the engine
itself (`<string> $this` prints exactly the literal the real exporter writes) and read in
pages by record-id range (see `pages`), so memory stays flat whatever the
table size. Layout follows the real exporter with two deliberate differences that make the
dump import cleanly: fields are written as `DEFINE FIELD OVERWRITE` (the automatic `in`/`out`
and `x.*` fields otherwise fail with "already exists"), and relation tables come after all
other tables so that ENFORCED edges find their endpoints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from spectron_backup.content_hash import TableHasher
from spectron_backup.dump.format import DB_SECTIONS, INSERT_BATCH, REDACTED, section_header
from spectron_backup.dump.pages import iter_record_pages
from spectron_backup.errors import UsageError
from spectron_backup.surreal import QueryRejected, SurrealConnection, surreal_identifier


@dataclass
class TableSummary:
    count: int
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "hash": self.hash}


@dataclass
class ExportSummary:
    namespace: str
    database: str
    snapshot: bool
    snapshot_method: str
    engine_version: str
    tables: dict[str, TableSummary] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return sum(t.count for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "ns": self.namespace,
            "db": self.database,
            "snapshot": self.snapshot,
            "snapshot_method": self.snapshot_method,
            "engine_version": self.engine_version,
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
            "tables": {name: t.to_json() for name, t in sorted(self.tables.items())},
        }


#: Called after each page with (table, records of that table so far).
ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True)
class _Table:
    name: str
    define: str
    kind: str  # NORMAL | RELATION | ANY

    @property
    def may_hold_edges(self) -> bool:
        return self.kind != "NORMAL"


def _table_kind(define: str) -> str:
    for kind in ("RELATION", "ANY", "NORMAL"):
        if f" TYPE {kind}" in define:
            return kind
    return "ANY"


def _overwrite_field(define: str) -> str:
    """`DEFINE FIELD x` -> `DEFINE FIELD OVERWRITE x`, so automatic fields replay."""
    if define.startswith("DEFINE FIELD ") and not define.startswith(
        ("DEFINE FIELD OVERWRITE", "DEFINE FIELD IF NOT EXISTS")
    ):
        return "DEFINE FIELD OVERWRITE " + define[len("DEFINE FIELD ") :]
    return define


class Exporter:
    """Writes one database's dump to a text stream and summarises what it wrote."""

    def __init__(
        self,
        conn: SurrealConnection,
        namespace: str,
        database: str,
        *,
        batch_size: int = INSERT_BATCH,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.conn = conn
        self.namespace = namespace
        self.database = database
        self.batch_size = batch_size
        self.progress = progress

    def export(self, out: TextIO) -> ExportSummary:
        started = time.perf_counter()
        conn = self.conn
        conn.use_existing(self.namespace, self.database)
        summary = ExportSummary(
            namespace=self.namespace,
            database=self.database,
            snapshot=conn.is_embedded or conn.has_transactions,
            snapshot_method=conn.snapshot_method(),
            engine_version=conn.engine_version(),
        )
        with conn.read_snapshot() as txn:
            info = conn.run_one("INFO FOR DB", txn=txn) or {}
            tables = [
                _Table(name, define, _table_kind(define))
                for name, define in sorted(info.get("tables", {}).items())
            ]
            self._check_table_names(tables, txn)
            out.write(self._preamble(summary))
            out.write(section_header("OPTION"))
            out.write("OPTION IMPORT;\n\n")
            self._write_db_sections(out, info, summary)
            # Relation tables last: an ENFORCED edge needs its endpoints' data first.
            ordered = [t for t in tables if t.kind != "RELATION"] + [
                t for t in tables if t.kind == "RELATION"
            ]
            for table in ordered:
                self._write_table(out, table, summary, txn)
        summary.seconds = time.perf_counter() - started
        return summary

    # -- header and database-level definitions -------------------------------------

    def _preamble(self, summary: ExportSummary) -> str:
        snapshot = "yes" if summary.snapshot else "NO"
        return (
            f"-- spectron-backup dump of {self.namespace}/{self.database}\n"
            f"-- engine: {summary.engine_version}; consistent snapshot: {snapshot} "
            f"({summary.snapshot_method})\n\n"
        )

    def _write_db_sections(self, out: TextIO, info: dict[str, Any], summary: ExportSummary) -> None:
        for key, title in DB_SECTIONS:
            items: dict[str, str] = info.get(key) or {}
            if not items:
                continue
            out.write(section_header(title))
            for name, define in sorted(items.items()):
                if REDACTED in define:
                    what = {"users": "user", "accesses": "access method"}.get(key, key.rstrip("s"))
                    message = (
                        f"{self.namespace}/{self.database}: the engine redacts the secret of {what} "
                        f"{name!r}; the dump cannot restore it: redefine it after a restore"
                    )
                    summary.warnings.append(message)
                    out.write(f"-- WARNING: {message}\n")
                out.write(f"{define};\n")
            out.write("\n")

    # -- tables ----------------------------------------------------------------------

    def _check_table_names(self, tables: list[_Table], txn: Any) -> None:
        """Refuse tables whose record ids the engine prints in a form it cannot parse.

        SurrealDB prints ids of tables named like keywords (`select`, `none`, `true`...)
        unescaped (`select:1`), and neither its importer nor ours can read them back.
        """
        for table in tables:
            printed = self.conn.run_one(
                "RETURN <string> type::record($tb, 0)", {"tb": table.name}, txn=txn
            )
            try:
                self.conn.run_one(f"RETURN {printed}", txn=txn)
            except QueryRejected:
                raise UsageError(
                    f"{self.namespace}/{self.database}: table {table.name!r} has a name SurrealDB "
                    f"prints unescaped in record ids ({printed}), which no importer can read back; "
                    "rename the table (for example with a copy to a new name) before backing it up"
                ) from None

    def _write_table(self, out: TextIO, table: _Table, summary: ExportSummary, txn: Any) -> None:
        conn = self.conn
        table_info = conn.run_one(f"INFO FOR TABLE {surreal_identifier(table.name)}", txn=txn) or {}
        out.write(section_header(f"TABLE: {table.name}"))
        out.write(f"{table.define};\n\n")
        for group in ("fields", "indexes", "events"):
            for _name, define in sorted((table_info.get(group) or {}).items()):
                out.write(f"{_overwrite_field(define)};\n")
            out.write("\n")
        hasher = TableHasher()
        header_written = False
        for page in iter_record_pages(
            conn,
            table.name,
            batch_size=self.batch_size,
            may_hold_edges=table.may_hold_edges,
            txn=txn,
        ):
            records = [text for text, is_edge in page if not is_edge]
            edges = [text for text, is_edge in page if is_edge]
            if not header_written:
                out.write("\n" + section_header(f"TABLE DATA: {table.name}"))
                header_written = True
            for text in records:
                hasher.add(text)
            for text in edges:
                hasher.add(text)
            if records:
                out.write("INSERT [ " + ", ".join(records) + " ];\n")
            if edges:
                out.write("INSERT RELATION [ " + ", ".join(edges) + " ];\n")
            if self.progress:
                self.progress(table.name, hasher.count)
        if header_written:
            out.write("\n")
        out.write("\n")
        summary.tables[table.name] = TableSummary(hasher.count, hasher.hexdigest())


def export_database(
    conn: SurrealConnection,
    namespace: str,
    database: str,
    out: TextIO,
    *,
    batch_size: int = INSERT_BATCH,
    progress: ProgressCallback | None = None,
) -> ExportSummary:
    return Exporter(conn, namespace, database, batch_size=batch_size, progress=progress).export(out)
