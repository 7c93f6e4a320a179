"""Reading a table's records as engine-printed text, one id-range page at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from spectron_backup.content_hash import TableHasher
from spectron_backup.surreal import SurrealConnection, surreal_identifier

#: (the record's `<string>` text as UTF-8, whether it is a graph edge). Bytes, not str: the
#: engine casts with `<bytes>`, so nothing decodes the text only to encode it again for the
#: hash and the file (that round trip was a third of the export's Python time).
Row = tuple[bytes, bool]


#: How much record text one query fetches; memory is bounded by this size, not by the
#: table's. At 208k records, pages of 1, 4, 8 and 24 MiB exported in the same time within
#: noise, and peak RSS did not follow the page size (the engine's block cache dominates it).
PAGE_BYTES = 24 << 20
MAX_PAGE_RECORDS = 20_000


def iter_record_pages(
    conn: SurrealConnection,
    table: str,
    *,
    min_page: int = 1000,
    page_bytes: int = PAGE_BYTES,
    may_hold_edges: bool = True,
    txn: Any = None,
) -> Iterator[list[Row]]:
    """Yield the table's records in id order, a page at a time; one page in memory.

    A page holds about `page_bytes` of record text (at least `min_page` records). Each page
    after the first is `WHERE id > <last id read> LIMIT n`. The 3.x engine plans that as a
    table scan with the limit pushed down and the predicate tested on keys before values are
    decoded (EXPLAIN: `TableScan ... limit ..., pre_decode_filter: yes`): a page costs its
    own records plus ~0.3 us per earlier key (0.3 s at a depth of 1M keys on this machine).
    The record-id range form `tb:key>..` is a RecordIdScan that decodes the whole rest of the
    table before applying the limit (5 s a page at 40k records), and START/LIMIT re-reads the
    skipped records' keys too; neither is used.
    """
    size = min_page
    query = page_query(table, None, size, may_hold_edges=may_hold_edges)
    while True:
        rows = conn.run_one(query, txn=txn) or []
        if not rows:
            return
        yield [(text, bool(is_edge)) for text, _id, is_edge in rows]
        if len(rows) < size:
            return
        average = sum(len(row[0]) for row in rows) / len(rows)
        size = max(min_page, min(MAX_PAGE_RECORDS, int(page_bytes / max(average, 1.0))))
        query = page_query(table, rows[-1][1], size, may_hold_edges=may_hold_edges)


def page_query(table: str, last_id: str | None, size: int, *, may_hold_edges: bool = True) -> str:
    """The query of one page: the records after `last_id` (the engine's own literal of the
    last id read; keyword-named tables, whose ids it prints unparseably, are refused before
    an export starts), as [UTF-8 text, id, is-edge] triples."""
    edge = "record::is_edge(id)" if may_hold_edges else "false"
    query = (
        f"SELECT VALUE [<bytes> <string> $this, <string> id, {edge}] "
        f"FROM {surreal_identifier(table)}"
    )
    if last_id is not None:
        query += f" WHERE id > {last_id}"
    return f"{query} LIMIT {size}"


def table_count(conn: SurrealConnection, table: str, *, txn: Any = None) -> int:
    """The engine's own record count of a table (a CountScan: no values are read)."""
    rows = conn.run_one(f"SELECT count() FROM {surreal_identifier(table)} GROUP ALL", txn=txn) or []
    return int(rows[0]["count"]) if rows else 0


def table_digest(conn: SurrealConnection, table: str, *, batch_size: int = 1000) -> TableHasher:
    """Count and content hash of a table as it is now, streamed (for checking a restore)."""
    hasher = TableHasher()
    for page in iter_record_pages(conn, table, min_page=batch_size, may_hold_edges=False):
        for text, _edge in page:
            hasher.add_utf8(text)
    return hasher
