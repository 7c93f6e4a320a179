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
#: table's. The engine and the SDK hold about 1 KB per record beyond its text while a page is
#: in flight, so small records are also capped by count.
PAGE_BYTES = 24 << 20
MAX_PAGE_RECORDS = 20_000
#: Records read to estimate a table's record size before its first page.
SAMPLE_RECORDS = 16

#: Whether a record is a graph edge. `record::is_edge(id)` reads the record a second time, which
#: doubled the cost of every page of an ANY table (0.77 s vs 0.40 s for 5,000 chunks); an edge
#: always has record links in `in` and `out`, and SurrealQL's AND stops at the first false, so
#: only records shaped like edges pay for the second read.
EDGE_TEST = "type::is_record(in) AND type::is_record(out) AND record::is_edge(id)"


def page_size(average_text: float, *, min_page: int, page_bytes: int = PAGE_BYTES) -> int:
    """How many records make a page of about `page_bytes` of text (min_page..MAX_PAGE_RECORDS)."""
    return max(min_page, min(MAX_PAGE_RECORDS, int(page_bytes / max(average_text, 1.0))))


def iter_pages(
    conn: SurrealConnection,
    table: str,
    values: list[str],
    *,
    id_column: int,
    text_column: int | None = None,
    min_page: int = 1000,
    page_bytes: int = PAGE_BYTES,
    txn: Any = None,
) -> Iterator[list[list[Any]]]:
    """Yield `[*values]` rows of every record of a table in id order, a page at a time.

    `values` are SurrealQL expressions; `id_column` is the one that is `<string> id`, and
    `text_column` (if any) the record's text, whose length sizes the pages to about
    `page_bytes` (else pages are MAX_PAGE_RECORDS long). Only one page is in memory: drop
    the yielded rows before asking for the next.

    Each page after the first is `WHERE id > <last id read> LIMIT n`. The 3.x engine plans that
    as a table scan with the limit pushed down and the predicate tested on keys before values
    are decoded (EXPLAIN: `TableScan ... limit ..., pre_decode_filter: yes`): a page costs its
    own records plus the keys before it (~0.3 us each for small records, ~2 us for records
    with large values, measured): quadratic in the table's length, so pages are as large as
    the memory bound allows. The record-id range form `tb:key>..` is a RecordIdScan that
    decodes the whole rest of the table before applying the limit (5 s a page at 40k
    records), and START/LIMIT re-reads the skipped records' keys too; neither is used. A
    page's fixed cost is large too (a page of 2,700 large records took 80 us a record, of
    10,000 72 us), so the first page is sized from a sample, not from a guess.
    """
    if text_column is None:
        size = MAX_PAGE_RECORDS
    else:
        size = _first_page_size(conn, table, min_page, page_bytes, txn)
    last: str | None = None
    while True:
        rows = conn.run_one(page_query(table, values, last, size), txn=txn) or []
        if not rows:
            return
        full = len(rows) == size
        last = rows[-1][id_column]
        if text_column is not None:
            average = sum(len(row[text_column]) for row in rows) / len(rows)
            size = page_size(average, min_page=min_page, page_bytes=page_bytes)
        yield rows
        del rows  # the next page is fetched without this one in memory
        if not full:
            return


def _first_page_size(
    conn: SurrealConnection, table: str, min_page: int, page_bytes: int, txn: Any
) -> int:
    lengths = (
        conn.run_one(
            f"SELECT VALUE string::len(<string> $this) FROM {surreal_identifier(table)} "
            f"LIMIT {SAMPLE_RECORDS}",
            txn=txn,
        )
        or []
    )
    if not lengths:
        return min_page
    return page_size(sum(lengths) / len(lengths), min_page=min_page, page_bytes=page_bytes)


def record_values(*, may_hold_edges: bool = True) -> list[str]:
    """What `iter_record_pages` reads of each record: [UTF-8 text, id, is edge]."""
    return ["<bytes> <string> $this", "<string> id", EDGE_TEST if may_hold_edges else "false"]


def iter_record_pages(
    conn: SurrealConnection,
    table: str,
    *,
    min_page: int = 1000,
    page_bytes: int = PAGE_BYTES,
    may_hold_edges: bool = True,
    txn: Any = None,
) -> Iterator[list[Row]]:
    """Yield the table's records in id order as (UTF-8 text, is edge), a page at a time (at
    least `min_page` records, about `page_bytes` of text; see `iter_pages`)."""
    for rows in iter_pages(
        conn,
        table,
        record_values(may_hold_edges=may_hold_edges),
        id_column=1,
        text_column=0,
        min_page=min_page,
        page_bytes=page_bytes,
        txn=txn,
    ):
        yield [(text, bool(is_edge)) for text, _id, is_edge in rows]
        del rows  # as in iter_pages: not held while the next page is read


def page_query(table: str, values: list[str], last_id: str | None, size: int) -> str:
    """The query of one page: the records after `last_id` (the engine's own literal of the
    last id read; keyword-named tables, whose ids it prints unparseably, are refused before
    an export starts)."""
    query = f"SELECT VALUE [{', '.join(values)}] FROM {surreal_identifier(table)}"
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
