"""The pager reads every record once, in bounded pages, with the query plan it was built for."""

from __future__ import annotations

from spectron_backup.dump.pages import iter_record_pages, page_query, table_count
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
        plan = conn.run_one("EXPLAIN " + page_query("t", "t:5", 1000, may_hold_edges=False))
        assert "TableScan" in plan
        assert "limit: 1000" in plan
        assert "pre_decode_filter: yes" in plan
