"""The pager reads every record once, in bounded pages, with the query plan it was built for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spectron_backup.dump.pages import (
    iter_record_pages,
    page_query,
    record_values,
    table_count,
)
from spectron_backup.surreal import connect


def test_pages_cover_every_record_once_across_id_kinds() -> None:
    with connect("mem://") as conn:
        conn.use("p", "q")
        conn.run(
            "DEFINE TABLE t SCHEMALESS; FOR $i IN 1..=2500 { CREATE type::record('t', $i) SET v = $i };"
            "CREATE t:`a string` SET v = 's'; CREATE t:['x', 1] SET v = 'arr'; CREATE t:{ k: 1 } SET v = 'obj';"
            "CREATE t:u'0190b7a0-0000-7000-8000-000000000000' SET v = 'uuid'"
        )
        pages = list(iter_record_pages(conn, "t", min_page=1000, page_bytes=1))
        texts = [text for page in pages for text, _edge in page]
        assert len(texts) == len(set(texts)) == table_count(conn, "t") == 2504
        assert max(len(page) for page in pages) == 1000  # page_bytes=1: never above min_page


def test_follow_on_pages_are_key_scans_with_the_limit_pushed_down() -> None:
    """Design: page by id only where the engine turns it into a bounded scan (EXPLAIN).
    A record-id range (`t:1>..`) is a RecordIdScan that decodes the whole rest of the table
    before its LIMIT; this guards against the plan changing under an engine upgrade."""
    with connect("mem://") as conn:
        conn.use("p", "q")
        conn.run("DEFINE TABLE t SCHEMALESS; FOR $i IN 1..=10 { CREATE type::record('t', $i) }")
        plan = conn.run_one(
            "EXPLAIN " + page_query("t", record_values(may_hold_edges=False), "t:5", 1000)
        )
        assert "TableScan" in plan
        assert "limit: 1000" in plan
        assert "pre_decode_filter: yes" in plan
        # the upper half of a table, read down from its last record: the same scan, backwards
        values = record_values(may_hold_edges=False)
        down = page_query("t", values, "t:9", 1000, middle="t:5", descending=True)
        plan = conn.run_one("EXPLAIN " + down)
        assert "TableScan" in plan
        assert "direction: Backward" in plan
        assert "limit: 1000" in plan
        assert "pre_decode_filter: yes" in plan
        assert [row[1] for row in conn.run_one(down)] == ["t:8", "t:7", "t:6", "t:5"]


def test_only_records_created_as_edges_are_edges_in_any_table() -> None:
    """The cheap edge test (record links in `in` and `out` first) agrees with the engine."""
    with connect("mem://") as conn:
        conn.use("p", "q")
        conn.run(
            "DEFINE TABLE a TYPE ANY SCHEMALESS; CREATE b:1, b:2;"
            "CREATE a:1 SET in = b:1, out = b:2;"  # shaped like an edge, but a plain record
            "RELATE b:1->a->b:2 CONTENT { id: a:2 };"
            "CREATE a:3 SET in = 1, out = 'x'; CREATE a:4"
        )
        [page] = list(iter_record_pages(conn, "a"))
        flags = [is_edge for _text, is_edge in page]
        assert flags == [False, True, False, False]
        assert flags == conn.run_one("SELECT VALUE record::is_edge(id) FROM a")


def test_the_first_page_is_sized_from_a_sample_of_the_records() -> None:
    with connect("mem://") as conn:
        conn.use("p", "q")
        conn.run(  # ids of one width: every record's text has the same length
            "FOR $i IN 1000..1200 { CREATE type::record('t', $i) SET v = string::repeat('x', 90) }"
        )
        average = len(conn.run_one("SELECT VALUE <string> $this FROM t:1000")[0])
        pages = list(iter_record_pages(conn, "t", min_page=5, page_bytes=average * 40))
        # 200 records: two halves of 100 read from both ends, pages of the two alternating
        assert [len(page) for page in pages] == [40, 40, 40, 40, 20, 20]


def test_an_on_disk_table_read_two_pages_at_a_time_gives_every_record_once(
    tmp_path: Path,
) -> None:
    """With two pages in flight (the export's way into an on-disk store), every record comes
    once, each page in id order, and the same store gives the same pages every time."""
    with connect(f"surrealkv://{tmp_path / 'store'}") as conn:
        conn.use("p", "q")
        conn.run(
            "FOR $i IN 1..=1500 { CREATE type::record('t', $i) SET v = $i };"
            "CREATE t:`a string`, t:['x', 1], t:{ k: 1 };"
        )
        every = conn.run_one("SELECT VALUE <string> $this FROM t")

        def read() -> list[list[bytes]]:
            submit = conn.submitter(2)
            return [
                [text for text, _edge in page]
                for page in iter_record_pages(conn, "t", min_page=100, page_bytes=1, submit=submit)
            ]

        pages = read()
        texts = [text.decode() for page in pages for text in page]
        assert sorted(texts) == sorted(every)
        assert len(set(texts)) == len(every) == 1503
        in_order = {text: index for index, text in enumerate(every)}
        for page in pages:
            positions = [in_order[text.decode()] for text in page]
            assert positions == sorted(positions)
        assert read() == pages
        assert table_count(conn, "t") == 1503  # the blocking handle is back


def test_records_created_while_a_table_is_read_without_a_snapshot_are_not_missed() -> None:
    """Each half stops reading when it has read as many records as the table was counted to
    have: over HTTP (no snapshot) records created meanwhile must still be read, not skipped
    because the count was met."""
    with connect("mem://") as conn:
        conn.use("p", "q")
        conn.run("FOR $i IN 1..=300 { CREATE type::record('t', $i * 2) }")  # t:2 .. t:600
        texts: list[str] = []
        for index, page in enumerate(iter_record_pages(conn, "t", min_page=50, page_bytes=1)):
            texts += [text.decode() for text, _edge in page]
            if index == 0:  # after the lower half's first page (t:2 .. t:100), in both
                # halves' unread parts: below the middle (t:302), and above it
                conn.run("CREATE t:201, t:301, t:401")
        assert sorted(texts) == sorted(conn.run_one("SELECT VALUE <string> $this FROM t"))
        assert len(texts) == 303


def test_one_query_at_a_time_reads_no_page_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without two queries in flight (a server, a memory store) reading ahead would only
    hold more pages in memory: each page is read when the one before it has been used."""
    with connect("mem://") as conn:
        conn.use("p", "q")
        conn.run("FOR $i IN 1..=400 { CREATE type::record('t', $i) }")
        pages_read: list[str] = []
        query = conn.query

        def counting(sql: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            if sql.startswith("SELECT VALUE [<bytes>"):
                pages_read.append(sql)
            return query(sql, *args, **kwargs)

        monkeypatch.setattr(conn, "query", counting)
        for index, _page in enumerate(iter_record_pages(conn, "t", min_page=50, page_bytes=1)):
            assert len(pages_read) == index + 1
        assert len(pages_read) == 8
