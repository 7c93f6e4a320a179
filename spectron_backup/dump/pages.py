"""Reading a table's records as engine-printed text, one id-range page at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from spectron_backup.content_hash import TableHasher
from spectron_backup.surreal import SurrealConnection, surreal_identifier

#: (the record's `<string>` text, whether it is a graph edge)
Row = tuple[str, bool]


def iter_record_pages(
    conn: SurrealConnection,
    table: str,
    *,
    batch_size: int = 1000,
    may_hold_edges: bool = True,
    txn: Any = None,
) -> Iterator[list[Row]]:
    """Yield the table's records in id order, `batch_size` at a time.

    Each page after the first starts with `tb:key>..`, a range scan from after the last id
    read (EXPLAIN shows RecordIdScan); `WHERE id > $last` would scan from the start every
    page, and START/LIMIT paging is quadratic. Only one page is in memory at a time.
    """
    edge = "record::is_edge(id)" if may_hold_edges else "false"
    select = f"SELECT VALUE [<string> $this, <string> id, {edge}] FROM "
    # How the engine prints this table's ids: the prefix to put in front of a key literal.
    prefix = conn.run_one("RETURN <string> type::record($tb, 0)", {"tb": table}, txn=txn)[:-1]
    source = surreal_identifier(table)
    limit = f" LIMIT {batch_size}"
    while True:
        rows = conn.run_one(select + source + limit, txn=txn) or []
        if not rows:
            return
        yield [(text, bool(is_edge)) for text, _id, is_edge in rows]
        if len(rows) < batch_size:
            return
        last_id: str = rows[-1][1]
        source = prefix + last_id[len(prefix) :] + ">.."


def table_digest(conn: SurrealConnection, table: str, *, batch_size: int = 1000) -> TableHasher:
    """Count and content hash of a table as it is now, streamed (for checking a restore)."""
    hasher = TableHasher()
    for page in iter_record_pages(conn, table, batch_size=batch_size, may_hold_edges=False):
        for text, _edge in page:
            hasher.add(text)
    return hasher
