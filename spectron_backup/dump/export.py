"""Export one SurrealDB database as a `surreal export`-compatible SurrealQL dump.

The schema comes from `INFO FOR DB` / `INFO FOR TABLE`; records are serialised by the engine
itself (`<string> $this` prints exactly the literal the real exporter writes) and read in
pages by record id (see `pages`), so memory stays flat whatever the
table size. Layout follows the real exporter with two deliberate differences that make the
dump import cleanly: fields are written as `DEFINE FIELD OVERWRITE` (the automatic `in`/`out`
and `x.*` fields otherwise fail with "already exists"), relation tables come after all
other tables so that ENFORCED edges find their endpoints, and view tables (`AS SELECT`) come
last, after the tables they read, without data: defining a view over a table that does not
exist yet fails, and defining it over restored data fills it (so its rows, written out, would
fail with "already exists"). Their rows still count in the summary's count and hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO, Any

from spectron_backup.content_hash import TableHasher
from spectron_backup.dump.format import (
    DB_SECTIONS,
    INSERT_BATCH,
    REDACTED,
    comment_text,
    section_header,
)
from spectron_backup.dump.pages import Row, iter_record_pages, table_count
from spectron_backup.dump.schema import fingerprint
from spectron_backup.errors import OperationFailed, UsageError
from spectron_backup.surreal import QueryRejected, Submit, SurrealConnection, surreal_identifier


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
    #: fingerprint of INFO FOR DB and every INFO FOR TABLE (see dump.schema)
    schema_hash: str = ""

    @property
    def records(self) -> int:
        return sum(t.count for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "ns": self.namespace,
            "db": self.database,
            "snapshot": self.snapshot,
            "snapshot_method": self.snapshot_method,
            "schema_hash": self.schema_hash,
            "engine_version": self.engine_version,
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
            "tables": {name: t.to_json() for name, t in sorted(self.tables.items())},
        }


class _DumpOut:
    """The dump's binary stream: schema text is encoded on the way, record text arrives
    already encoded (see `pages.Row`) and goes straight through."""

    __slots__ = ("raw",)

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def write(self, text: str) -> None:
        self.raw.write(text.encode("utf-8"))


#: Called after each page with (table, records of that table so far).
ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True)
class _Table:
    name: str
    define: str
    kind: str  # NORMAL | RELATION | ANY
    #: a view (`AS SELECT`): the engine computes its records from its source tables
    view: bool = False

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

    def export(self, raw: IO[bytes]) -> ExportSummary:
        """Write the dump (UTF-8) to `raw` and summarise it."""
        started = time.perf_counter()
        out = _DumpOut(raw)
        conn = self.conn
        conn.use_existing(self.namespace, self.database)
        summary = ExportSummary(
            namespace=self.namespace,
            database=self.database,
            snapshot=conn.is_embedded or conn.has_transactions,
            snapshot_method=conn.snapshot_method(),
            engine_version=conn.engine_version(),
        )
        submit = conn.submitter(2)  # two pages in flight: see `pages.iter_pages`
        with conn.read_snapshot() as txn:
            info = conn.run_one("INFO FOR DB", txn=txn) or {}
            tables = [
                _Table(name, define, _table_kind(define))
                for name, define in sorted(info.get("tables", {}).items())
            ]
            self._check_table_names(tables, txn)
            table_infos = {
                t.name: conn.run_one(f"INFO FOR TABLE {surreal_identifier(t.name)}", txn=txn) or {}
                for t in tables
            }
            summary.schema_hash = fingerprint(info, table_infos)
            out.write(self._preamble(summary))
            out.write(section_header("OPTION"))
            out.write("OPTION IMPORT;\n\n")
            self._write_db_sections(out, info, summary)
            for table in self._restore_order(tables, table_infos):
                self._write_table(out, table, table_infos[table.name], summary, txn, submit)
        summary.seconds = time.perf_counter() - started
        return summary

    # -- header and database-level definitions -------------------------------------

    def _preamble(self, summary: ExportSummary) -> str:
        snapshot = "yes" if summary.snapshot else "NO"
        return (
            f"-- spectron-backup dump of {comment_text(f'{self.namespace}/{self.database}')}\n"
            f"-- engine: {summary.engine_version}; consistent snapshot: {snapshot} "
            f"({summary.snapshot_method})\n\n"
        )

    def _write_db_sections(
        self, out: _DumpOut, info: dict[str, Any], summary: ExportSummary
    ) -> None:
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
                    out.write(f"-- WARNING: {comment_text(message)}\n")
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

    def _restore_order(
        self, tables: list[_Table], table_infos: dict[str, dict[str, Any]]
    ) -> list[_Table]:
        """Relation tables after the others (an ENFORCED edge needs its endpoints' data
        first), then views, each after every table it reads (`INFO FOR TABLE src` lists the
        views fed by src), since a view cannot be defined before its sources."""
        sources: dict[str, set[str]] = {}
        for table in tables:
            for view in table_infos[table.name].get("tables") or {}:
                sources.setdefault(view, set()).add(table.name)
        plain = [t for t in tables if t.name not in sources]
        ordered = [t for t in plain if t.kind != "RELATION"] + [
            t for t in plain if t.kind == "RELATION"
        ]
        placed = {t.name for t in ordered}
        views = [replace(t, view=True) for t in tables if t.name in sources]
        while views:
            ready = [v for v in views if sources[v.name] <= placed | {v.name}] or views[:1]
            ordered += ready
            placed |= {v.name for v in ready}
            views = [v for v in views if v.name not in placed]
        return ordered

    def _write_table(
        self,
        out: _DumpOut,
        table: _Table,
        table_info: dict[str, Any],
        summary: ExportSummary,
        txn: Any,
        submit: Submit,
    ) -> None:
        conn = self.conn
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
            min_page=self.batch_size,
            may_hold_edges=table.may_hold_edges,
            txn=txn,
            submit=submit,
        ):
            for text, _edge in page:
                hasher.add_utf8(text)
            if not table.view:
                if not header_written:
                    out.write("\n" + section_header(f"TABLE DATA: {table.name}"))
                    header_written = True
                self._write_inserts(out, page)
            del page  # not in memory while the next page is read
            if self.progress:
                self.progress(table.name, hasher.count)
        if header_written:
            out.write("\n")
        if table.view:
            out.write(
                f"-- VIEW DATA: {comment_text(table.name)}: not written; the engine computes the view's "
                f"{hasher.count} records from its source tables when the view is defined\n"
            )
        out.write("\n")
        self._check_count(table.name, hasher.count, summary, txn)
        summary.tables[table.name] = TableSummary(hasher.count, hasher.hexdigest())

    def _write_inserts(self, out: _DumpOut, page: list[Row]) -> None:
        """Like the real exporter: per batch of at most `batch_size` records, one INSERT line
        for plain records and one INSERT RELATION line for edges. Written as pieces: joining a
        line first copies every record once more, into a fresh multi-megabyte buffer whose
        pages are faulted in each time (see `large_allocations`)."""
        for start in range(0, len(page), self.batch_size):
            batch = page[start : start + self.batch_size]
            records = [text for text, is_edge in batch if not is_edge]
            edges = [text for text, is_edge in batch if is_edge]
            if records:
                out.raw.writelines(_insert_line(b"INSERT [ ", records))
            if edges:
                out.raw.writelines(_insert_line(b"INSERT RELATION [ ", edges))

    def _check_count(self, table: str, exported: int, summary: ExportSummary, txn: Any) -> None:
        """The records written must be the records the engine counts: a dump that silently
        misses records is the one failure a backup tool must never have."""
        counted = table_count(self.conn, table, txn=txn)
        if counted == exported:
            return
        message = f"{self.namespace}/{self.database}: table {table!r}: exported {exported} records but the engine counts {counted}"
        if summary.snapshot:
            raise OperationFailed(message + " within the same snapshot; the dump is not usable")
        summary.warnings.append(message + " (no snapshot: the table changed while it was read)")


def _insert_line(head: bytes, texts: list[bytes]) -> list[bytes]:
    """The pieces of `head text, text, ... ];` and its newline."""
    pieces = [head]
    for text in texts:
        pieces += (text, b", ")
    pieces[-1] = b" ];\n"
    return pieces


def export_database(
    conn: SurrealConnection,
    namespace: str,
    database: str,
    out: IO[bytes],
    *,
    batch_size: int = INSERT_BATCH,
    progress: ProgressCallback | None = None,
) -> ExportSummary:
    """Write the dump of `namespace/database` to the binary stream `out` (UTF-8 text)."""
    return Exporter(conn, namespace, database, batch_size=batch_size, progress=progress).export(out)
