"""Reading a table's records as engine-printed text, one id-range page at a time."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import suppress
from functools import partial
from typing import Any

from spectron_backup.content_hash import TableHasher
from spectron_backup.surreal import Submit, SurrealConnection, surreal_identifier

#: (the record's `<string>` text as UTF-8, whether it is a graph edge). Bytes, not str: the
#: engine casts with `<bytes>`, so nothing decodes the text only to encode it again for the
#: hash and the file (that round trip was a third of the export's Python time).
Row = tuple[bytes, bool]


#: How much record text one query fetches; memory is bounded by this size, not by the
#: table's. The engine and the SDK hold about 1 KB per record beyond its text while a page is
#: in flight, so small records are also capped by count. Up to three pages are in memory
#: (see `iter_pages`): 16 MiB keeps an export of the 659 MB benchmark dump under 300 MB as in
#: a 2 GiB container (see `large_allocations`).
PAGE_BYTES = 16 << 20
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
    submit: Submit | None = None,
) -> Iterator[list[list[Any]]]:
    """Yield `[*values]` rows of every record of a table, each once, a page at a time.

    `values` are SurrealQL expressions; `id_column` is the one that is `<string> id`, and
    `text_column` (if any) the record's text, whose length sizes the pages to about
    `page_bytes` (else pages are MAX_PAGE_RECORDS long). Drop the yielded rows before asking
    for the next page.

    Each page after a half's first is `WHERE id > <last id read> LIMIT n` (`<` for the upper
    half, below). The 3.x engine plans that
    as a table scan with the limit pushed down and the predicate tested on keys before values
    are decoded (EXPLAIN: `TableScan ... limit ..., pre_decode_filter: yes`): a page costs its
    own records plus the keys before it (~0.3 us each for small records, ~2 us for records
    with large values, measured): quadratic in the table's length, so pages are as large as
    the memory bound allows. The record-id range form `tb:key>..` is a RecordIdScan that
    decodes the whole rest of the table before applying the limit (5 s a page at 40k
    records), and paging by START/LIMIT re-reads the skipped records' keys too; neither is used. A
    page's fixed cost is large too (a page of 2,700 large records took 80 us a record, of
    10,000 72 us), so the first page is sized from a sample, not from a guess.

    A table of more than one page is read from both ends: up from its first record to its
    middle one, and down from its last (`ORDER BY id DESC` is the same scan run backwards),
    pages of the two alternating. Each half re-scans only its own keys, which halves the
    quadratic cost; and with `submit` (`SurrealConnection.submitter`) the next page
    of each half is in flight while a page is handed out: two queries keep both cores busy
    where one reaches ~1.4 (a 40,000-chunk table: 2.4 s vs 3.7 s, by hand), and the caller's
    work on a page overlaps the engine's. At most three pages are in memory then.
    """
    if text_column is None:
        size = MAX_PAGE_RECORDS
    else:
        size = _first_page_size(conn, table, min_page, page_bytes, txn)
    halves = deque(_halves(conn, table, values, size, txn))
    # reading ahead only where queries run concurrently; else one page in memory at a time
    ahead = submit is not None and txn is None
    fetch = submit if submit is not None and ahead else partial(conn.submit_now, txn=txn)
    pending = {half: fetch(half.query()) for half in halves} if ahead else {}
    try:
        while halves:
            half = halves.popleft()
            future = pending.pop(half, None) or fetch(half.query())
            rows = _rows(conn, future)
            del future
            more = len(rows) == half.asked
            if rows:
                half.last = rows[-1][id_column]
                if half.remaining is not None:
                    half.remaining -= len(rows)
                if text_column is not None:
                    average = sum(len(row[text_column]) for row in rows) / len(rows)
                    half.size = page_size(average, min_page=min_page, page_bytes=page_bytes)
            if more and half.remaining == 0:
                more = not _met_the_other_half(conn, half, txn)
            if more:
                if ahead:  # read on while this page is worked on
                    pending[half] = fetch(half.query())
                halves.append(half)
            if rows:
                if half.descending:
                    rows.reverse()  # each page in id order
                yield rows
            del rows  # not held while the next page is read
    finally:
        for waiting in pending.values():  # nothing of ours still running in the engine
            with suppress(Exception):
                waiting.result()


class _Half:
    """One half of a table being paged: below `middle`, up from the first record, or from
    `middle` on, down from the last (`descending`); the whole table when `middle` is None.
    `remaining` is how many records the count said the half has left to read."""

    __slots__ = ("asked", "descending", "last", "middle", "remaining", "size", "table", "values")

    def __init__(
        self,
        table: str,
        values: list[str],
        size: int,
        middle: str | None = None,
        descending: bool = False,
        remaining: int | None = None,
    ) -> None:
        self.table, self.values, self.size = table, values, size
        self.middle, self.descending, self.remaining = middle, descending, remaining
        self.last: str | None = None
        self.asked = 0

    def query(self) -> str:
        self.asked = self.size if self.remaining is None else min(self.size, self.remaining)
        return page_query(
            self.table,
            self.values,
            self.last,
            self.asked,
            middle=self.middle,
            descending=self.descending,
        )


def _halves(
    conn: SurrealConnection, table: str, values: list[str], size: int, txn: Any
) -> list[_Half]:
    """The whole table, or its two halves when it has more than one page of records. START
    skips keys without decoding their values when nothing is filtered (~1.5 us a key for
    large records, by hand): a few tens of milliseconds to find the middle of 40,000 chunks."""
    count = table_count(conn, table, txn=txn)
    if count <= size:
        return [_Half(table, values, size)]
    ids = conn.run_one(
        f"SELECT VALUE <string> id FROM {surreal_identifier(table)} START {count // 2} LIMIT 1",
        txn=txn,
    )
    if not ids:  # the table shrank meanwhile (no snapshot)
        return [_Half(table, values, size)]
    lower, upper = count // 2, count - count // 2
    return [
        _Half(table, values, size, ids[0], remaining=lower),
        _Half(table, values, size, ids[0], descending=True, remaining=upper),
    ]


def _met_the_other_half(conn: SurrealConnection, half: _Half, txn: Any) -> bool:
    """Whether a half that has read as many records as the count said reached the middle.

    Asking the scan for one more record would cost a scan of the other half's keys (the
    bound at the middle is a filter, not a seek); the bounded record-id range between the
    last id read and the middle is a seek. Without a snapshot the table may have changed
    since it was counted: then the half reads on until a short page.
    """
    if half.descending:
        met = half.last == half.middle  # the engine's own literals of the same id
    else:
        met = not conn.run_one(
            f"SELECT VALUE id FROM type::record(record::tb({half.middle}), "
            f"record::id({half.last})>..record::id({half.middle})) LIMIT 1",
            txn=txn,
        )
    if not met:
        half.remaining = None
    return met


def _rows(conn: SurrealConnection, results: Future[list[dict[str, Any]]]) -> list[Any]:
    return conn.last_value(results.result()) or []


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
    submit: Submit | None = None,
) -> Iterator[list[Row]]:
    """Yield the table's records as (UTF-8 text, is edge), a page at a time (at least
    `min_page` records, about `page_bytes` of text; see `iter_pages`)."""
    for rows in iter_pages(
        conn,
        table,
        record_values(may_hold_edges=may_hold_edges),
        id_column=1,
        text_column=0,
        min_page=min_page,
        page_bytes=page_bytes,
        txn=txn,
        submit=submit,
    ):
        yield [(text, bool(is_edge)) for text, _id, is_edge in rows]
        del rows  # as in iter_pages: not held while the next page is read


def page_query(
    table: str,
    values: list[str],
    last_id: str | None,
    size: int,
    *,
    middle: str | None = None,
    descending: bool = False,
) -> str:
    """The query of one page: the records after `last_id` (before it when `descending`), and
    below `middle` (from it on when `descending`). Ids are the engine's own literals of ids
    it returned; keyword-named tables, whose ids it prints unparseably, are refused before an
    export starts."""
    below, above = ("<", ">") if not descending else (">=", "<")
    conditions = [f"id {below} {middle}"] if middle is not None else []
    if last_id is not None:
        conditions.append(f"id {above} {last_id}")
    query = f"SELECT VALUE [{', '.join(values)}] FROM {surreal_identifier(table)}"
    if conditions:
        query += " WHERE " + " AND ".join(conditions)
    if descending:
        query += " ORDER BY id DESC"
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
