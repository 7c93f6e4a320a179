"""Validation of a restored database: every check passes on good data, and each kind of bad
data planted in a seeded Spectron instance fails the right check, naming the right record."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from spectron_backup import validation
from spectron_backup.checks import CheckResult
from spectron_backup.dump import pages
from spectron_backup.dump.export import export_database
from spectron_backup.dump.importer import import_dump
from spectron_backup.dump.pages import table_digest
from spectron_backup.dump.schema import schema_fingerprint
from spectron_backup.manifest import DatabaseEntry, TableEntry
from spectron_backup.seed import SeedPlan, SeedResult, seed_instance
from spectron_backup.stores import Store, open_store
from spectron_backup.surreal import SurrealConnection, connect
from spectron_backup.validation import validate_restored

WIDTH = 8  # embedding width of the test seeds (the HNSW DIMENSION)
PLAIN_KEY = "sk_live_4f9c2b7e1d0a"


@dataclass
class Seeded:
    conn: SurrealConnection
    result: SeedResult
    documents: Store

    @property
    def ns(self) -> str:
        return self.result.contexts[0].namespace

    @property
    def db(self) -> str:
        return self.result.contexts[0].database

    def use(self) -> None:
        self.conn.use(self.ns, self.db)


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    documents = open_store((tmp_path / "documents").as_uri())
    conn = connect("mem://")
    result = seed_instance(
        conn,
        SeedPlan(contexts=1, scale=0.2, embedding_width=WIDTH, jobqueue=False),
        documents=documents,
    )
    yield Seeded(conn, result, documents)
    conn.close()


def manifest_entry(conn: SurrealConnection, ns: str, db: str) -> DatabaseEntry:
    """What a backup's manifest says of a database as it is now (table_digest + schema)."""
    conn.use(ns, db)
    tables = {}
    for name in conn.run_one("INFO FOR DB")["tables"]:
        digest = table_digest(conn, name)
        tables[name] = TableEntry(count=digest.count, hash=digest.hexdigest())
    return DatabaseEntry(
        ns=ns,
        db=db,
        key=f"backups/x/{ns}/{db}.surql.zst",
        bytes=0,
        raw_bytes=0,
        sha256="",
        tables=tables,
        records=sum(t.count for t in tables.values()),
        schema_hash=schema_fingerprint(conn),
    )


def validate(s: Seeded, *, documents: Store | None = None, **kwargs) -> list[CheckResult]:
    """Plant first, then call: the manifest is taken of the data as it is now, so that only
    the expectation under test can fail."""
    entry = manifest_entry(s.conn, s.ns, s.db)
    return validate_restored(
        s.conn, entry, namespace=s.ns, database=s.db, documents=documents, **kwargs
    )


def failed(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r.passed]


def only_failure(results: list[CheckResult]) -> CheckResult:
    failures = failed(results)
    assert len(failures) == 1, "\n".join(map(str, failures))
    return failures[0]


def plant(s: Seeded, sql: str) -> None:
    """Write data the schema would refuse (OPTION IMPORT skips ASSERT clauses)."""
    s.use()
    s.conn.run("OPTION IMPORT; " + sql)


def first_id(s: Seeded, table: str, where: str = "") -> str:
    s.use()
    return s.conn.run_one(f"SELECT VALUE <string> id FROM {table} {where} LIMIT 1")[0]


# -- good data ------------------------------------------------------------------------------


def test_every_check_passes_on_a_good_context_and_all_are_reported(seeded: Seeded) -> None:
    results = validate(seeded, documents=seeded.documents)
    assert not failed(results), "\n".join(map(str, failed(results)))
    assert {r.database for r in results} == {f"{seeded.ns}/{seeded.db}"}
    checks = {(r.table, r.check) for r in results}
    for expected in [
        (None, "schema_matches_manifest"),
        (None, "tables_match_manifest"),
        ("turn", "count_matches_manifest"),
        ("turn", "hash_matches_manifest"),
        ("turn", "ids_unique"),
        ("turn", "role_in_set"),
        ("turn", "session_seq_unique"),
        ("turn", "links_resolve"),
        ("entity", "memory_category_in_set"),
        ("attribute", "memory_category_in_set"),
        ("attribute", "valid_until_not_before_valid_from"),
        ("attribute", "links_resolve"),
        ("relates_to", "memory_category_in_set"),
        ("relates_to", "valid_until_not_before_valid_from"),
        ("relates_to", "links_resolve"),
        ("knowledge_has_keyword", "links_resolve"),
        ("knowledge_chunk", "embedding_dimension_matches_index"),
        ("knowledge_chunk", "embedding_has_no_nan"),
        ("knowledge_chunk", "links_resolve"),
        ("memory_chunk", "embedding_dimension_matches_index"),
        ("memory_chunk", "embedding_has_no_nan"),
        ("memory_chunk", "links_resolve"),
        ("document", "content_hash_format"),
        ("document", "document_objects_exist"),
        ("decision_trace", "ids_unique"),
    ]:
        assert expected in checks
    # a relation table's in and out are two checks
    assert sum(1 for r in results if (r.table, r.check) == ("relates_to", "links_resolve")) == 2
    # expectations are applied only where their tables and fields are
    assert ("decision_trace", "memory_category_in_set") not in checks
    assert ("session", "links_resolve") not in checks
    dimension = next(r for r in results if r.check == "embedding_dimension_matches_index")
    assert f"DIMENSION {WIDTH}" in dimension.detail


def test_the_control_plane_passes_and_its_key_hashes_are_checked(seeded: Seeded) -> None:
    entry = manifest_entry(seeded.conn, "spectron", "metadata")
    results = validate_restored(seeded.conn, entry, namespace="spectron", database="metadata")
    assert not failed(results), "\n".join(map(str, failed(results)))
    hashed = {r.table for r in results if r.check == "key_hash_is_argon2"}
    assert hashed == {"api_key", "context_api_key"}
    assert {r.database for r in results} == {"spectron/metadata"}


def test_a_restored_copy_under_other_names_passes(seeded: Seeded) -> None:
    """Export + import into another engine under a scratch prefix, as a drill does."""
    dump = io.BytesIO()
    summary = export_database(seeded.conn, seeded.ns, seeded.db, dump)
    entry = DatabaseEntry(
        ns=seeded.ns,
        db=seeded.db,
        key="k",
        bytes=0,
        raw_bytes=0,
        sha256="",
        tables={n: TableEntry(count=t.count, hash=t.hash) for n, t in summary.tables.items()},
        schema_hash=summary.schema_hash,
    )
    with connect("mem://") as scratch:
        text = io.StringIO(dump.getvalue().decode("utf-8"), newline="")
        assert import_dump(scratch, "drill_1_" + seeded.ns, seeded.db, text).ok
        results = validate_restored(
            scratch,
            entry,
            namespace="drill_1_" + seeded.ns,
            database=seeded.db,
            documents=seeded.documents,
        )
    assert not failed(results), "\n".join(map(str, failed(results)))
    assert {r.database for r in results} == {f"{seeded.ns}/{seeded.db}"}


def test_many_frames_and_pages_give_the_same_answers(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big tables are read in pages and validated in frames: counts, hashes and uniqueness
    still hold across them."""
    monkeypatch.setattr(validation, "FRAME_ROWS", 7)
    monkeypatch.setattr(validation, "MIN_PAGE", 5)
    monkeypatch.setattr(pages, "MAX_PAGE_RECORDS", 5)
    results = validate(seeded, documents=seeded.documents)
    assert not failed(results), "\n".join(map(str, failed(results)))
    turns = next(r for r in results if (r.table, r.check) == ("turn", "role_in_set"))
    seeded.use()
    assert f"{seeded.conn.run_one('SELECT count() FROM turn GROUP ALL')[0]['count']} records" in (
        turns.detail
    )


def test_duplicates_in_different_frames_are_found(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "FRAME_ROWS", 7)
    monkeypatch.setattr(validation, "MIN_PAGE", 5)
    monkeypatch.setattr(pages, "MAX_PAGE_RECORDS", 5)
    seeded.use()
    first, last = seeded.conn.run_one(
        "SELECT VALUE <string> id FROM turn WHERE session = session:s0001 ORDER BY seq"
    )[:: len(seeded.conn.run_one("SELECT VALUE id FROM turn WHERE session = session:s0001")) - 1]
    plant(seeded, f"REMOVE INDEX session_seq ON turn; UPDATE {last} SET seq = 0 RETURN NONE")
    failure = only_failure(validate(seeded))
    assert (failure.table, failure.check) == ("turn", "session_seq_unique")
    assert set(failure.failing_ids) == {first, last}
    assert "2 of" in failure.detail


# -- bad data -------------------------------------------------------------------------------


def test_a_memory_category_of_gossip(seeded: Seeded) -> None:
    target = first_id(seeded, "attribute")
    plant(seeded, f"UPDATE {target} SET memory_category = 'gossip' RETURN NONE")
    failure = only_failure(validate(seeded))
    assert (failure.table, failure.check) == ("attribute", "memory_category_in_set")
    assert failure.failing_ids == [target]
    assert "expect_column_values_to_be_in_set" in failure.detail
    assert "gossip" in failure.detail
    assert failure.database == f"{seeded.ns}/{seeded.db}"


def test_an_embedding_of_the_wrong_width(seeded: Seeded) -> None:
    """The HNSW index refuses such a vector (even under OPTION IMPORT); an index defined
    CONCURRENTLY over existing data is defined anyway, with its build in error."""
    target = first_id(seeded, "knowledge_chunk", "WHERE embedding != NONE")
    plant(
        seeded,
        "REMOVE INDEX embedding_index ON knowledge_chunk; "
        f"UPDATE {target} SET embedding = [0.5, 0.5, 0.5] RETURN NONE; "
        "DEFINE INDEX embedding_index ON knowledge_chunk FIELDS embedding "
        f"HNSW DIMENSION {WIDTH} DIST COSINE TYPE F32 CONCURRENTLY",
    )
    failure = only_failure(validate(seeded))
    assert (failure.table, failure.check) == (
        "knowledge_chunk",
        "embedding_dimension_matches_index",
    )
    assert failure.failing_ids == [target]
    assert f"DIMENSION {WIDTH}" in failure.detail
    assert "found 3" in failure.detail


@pytest.mark.parametrize("nan", ["NaN", "-NaN", "0.0 / 0.0"])
def test_a_nan_in_an_embedding(seeded: Seeded, nan: str) -> None:
    """Every NaN: the engine orders NaN totally (NaN = NaN), and 0/0 is the negative one."""
    target = first_id(seeded, "memory_chunk", "WHERE embedding != NONE")
    plant(seeded, f"UPDATE {target} SET embedding[2] = {nan} RETURN NONE")
    failure = only_failure(validate(seeded))
    assert (failure.table, failure.check) == ("memory_chunk", "embedding_has_no_nan")
    assert failure.failing_ids == [target]


def test_a_turn_whose_session_is_missing(seeded: Seeded) -> None:
    target = first_id(seeded, "turn")
    plant(seeded, f"UPDATE {target} SET session = session:ghost RETURN NONE")
    failures = failed(validate(seeded))
    links = [f for f in failures if f.check == "links_resolve"]
    assert [(f.table, f.failing_ids) for f in links] == [("turn", [target])]
    assert "turn.session" in links[0].detail
    assert "session:ghost" in links[0].detail


def test_a_deleted_session_breaks_turns_and_memory_chunks(seeded: Seeded) -> None:
    seeded.use()
    turns = seeded.conn.run_one("SELECT VALUE <string> id FROM turn WHERE session = session:s0001")
    seeded.conn.run("DELETE session:s0001")
    failures = {(f.table, f.check): f for f in failed(validate(seeded, sample=3))}
    assert set(failures) == {("turn", "links_resolve"), ("memory_chunk", "links_resolve")}
    turn = failures[("turn", "links_resolve")]
    assert len(turn.failing_ids) == 3
    assert set(turn.failing_ids) <= set(turns)
    assert f"{len(turns)} of" in turn.detail


def test_a_relation_whose_endpoint_is_missing(seeded: Seeded) -> None:
    """Deleting an entity deletes its edges; an edge to a missing record can still be
    imported (relation tables are not ENFORCED)."""
    seeded.use()
    source = seeded.conn.run_one("SELECT VALUE <string> in FROM relates_to LIMIT 1")[0]
    plant(
        seeded,
        "INSERT RELATION INTO relates_to [{ id: relates_to:ghost, "
        f"in: {source}, out: entity:['person', 'nobody'], label: 'knows', "
        "memory_category: 'knowledge', created_at: d'2026-01-01T00:00:00Z' }] RETURN NONE",
    )
    failure = only_failure(validate(seeded))
    assert (failure.table, failure.check) == ("relates_to", "links_resolve")
    assert failure.failing_ids == ["relates_to:ghost"]
    assert "relates_to.out" in failure.detail
    assert "entity:['person', 'nobody']" in failure.detail


def test_a_duplicate_session_seq(seeded: Seeded) -> None:
    seeded.use()
    first, second = seeded.conn.run_one(
        "SELECT VALUE <string> id FROM turn WHERE session = session:s0001 ORDER BY seq LIMIT 2"
    )
    plant(seeded, f"REMOVE INDEX session_seq ON turn; UPDATE {second} SET seq = 0 RETURN NONE")
    failure = only_failure(validate(seeded))
    assert (failure.table, failure.check) == ("turn", "session_seq_unique")
    assert set(failure.failing_ids) == {first, second}
    assert "expect_compound_columns_to_be_unique" in failure.detail
    assert "session:s0001, 0" in failure.detail


def test_a_turn_role_out_of_its_set(seeded: Seeded) -> None:
    target = first_id(seeded, "turn")
    plant(seeded, f"UPDATE {target} SET role = 'robot' RETURN NONE")
    failure = only_failure(validate(seeded))
    assert (failure.table, failure.check, failure.failing_ids) == ("turn", "role_in_set", [target])
    assert "robot" in failure.detail


def test_a_plain_text_api_key_is_caught_and_never_shown(seeded: Seeded) -> None:
    seeded.conn.use("spectron", "metadata")
    seeded.conn.run(f"UPDATE api_key:k002 SET hash = '{PLAIN_KEY}' RETURN NONE")
    entry = manifest_entry(seeded.conn, "spectron", "metadata")
    results = validate_restored(seeded.conn, entry, namespace="spectron", database="metadata")
    failure = only_failure(results)
    assert (failure.table, failure.check) == ("api_key", "key_hash_is_argon2")
    assert failure.failing_ids == ["api_key:k002"]
    assert all(PLAIN_KEY not in str(r.to_json()) for r in results)


def test_a_bad_content_hash(seeded: Seeded) -> None:
    target = first_id(seeded, "document")
    plant(seeded, f"UPDATE {target} SET content_hash = 'sha256:0123abcd' RETURN NONE")
    failure = only_failure(validate(seeded))
    assert (failure.table, failure.check) == ("document", "content_hash_format")
    assert failure.failing_ids == [target]
    assert "expect_column_values_to_match_regex" in failure.detail
    assert "sha256:0123abcd" in failure.detail


def test_valid_until_before_valid_from(seeded: Seeded) -> None:
    target = first_id(seeded, "attribute")
    plant(
        seeded,
        f"UPDATE {target} SET valid_from = d'2026-03-02T00:00:00Z', "
        "valid_until = d'2026-03-01T00:00:00Z' RETURN NONE",
    )
    failure = only_failure(validate(seeded))
    assert (failure.table, failure.check) == ("attribute", "valid_until_not_before_valid_from")
    assert failure.failing_ids == [target]
    assert "2026-03-01" in failure.detail


def test_a_count_changed_in_the_manifest(seeded: Seeded) -> None:
    entry = manifest_entry(seeded.conn, seeded.ns, seeded.db)
    entry.tables["turn"].count += 1
    results = validate_restored(seeded.conn, entry, namespace=seeded.ns, database=seeded.db)
    failure = only_failure(results)
    assert (failure.table, failure.check) == ("turn", "count_matches_manifest")
    assert f"the manifest says {entry.tables['turn'].count}" in failure.detail


def test_a_hash_changed_in_the_manifest(seeded: Seeded) -> None:
    entry = manifest_entry(seeded.conn, seeded.ns, seeded.db)
    entry.tables["entity"].hash = "0" * 64
    failure = only_failure(
        validate_restored(seeded.conn, entry, namespace=seeded.ns, database=seeded.db)
    )
    assert (failure.table, failure.check) == ("entity", "hash_matches_manifest")


def test_a_record_changed_after_the_backup(seeded: Seeded) -> None:
    entry = manifest_entry(seeded.conn, seeded.ns, seeded.db)
    target = first_id(seeded, "instruction")
    seeded.conn.run(f"UPDATE {target} SET active = !active RETURN NONE")
    failure = only_failure(
        validate_restored(seeded.conn, entry, namespace=seeded.ns, database=seeded.db)
    )
    assert (failure.table, failure.check) == ("instruction", "hash_matches_manifest")


def test_a_schema_change_after_the_backup(seeded: Seeded) -> None:
    entry = manifest_entry(seeded.conn, seeded.ns, seeded.db)
    seeded.conn.run("DEFINE FIELD reviewed ON document TYPE option<bool>")
    failure = only_failure(
        validate_restored(seeded.conn, entry, namespace=seeded.ns, database=seeded.db)
    )
    assert (failure.table, failure.check) == (None, "schema_matches_manifest")
    assert "differs from the manifest" in failure.detail


def test_a_manifest_without_a_schema_fingerprint_is_not_held_against_the_restore(
    seeded: Seeded,
) -> None:
    entry = manifest_entry(seeded.conn, seeded.ns, seeded.db)
    entry.schema_hash = ""
    results = validate_restored(seeded.conn, entry, namespace=seeded.ns, database=seeded.db)
    schema = next(r for r in results if r.check == "schema_matches_manifest")
    assert schema.passed
    assert "no fingerprint in this manifest" in schema.detail


def test_a_table_missing_from_the_restore(seeded: Seeded) -> None:
    entry = manifest_entry(seeded.conn, seeded.ns, seeded.db)
    seeded.conn.run("REMOVE TABLE uncertainty")
    entry.schema_hash = ""
    failures = {
        (f.table, f.check)
        for f in failed(
            validate_restored(seeded.conn, entry, namespace=seeded.ns, database=seeded.db)
        )
    }
    assert failures == {
        (None, "tables_match_manifest"),
        ("uncertainty", "count_matches_manifest"),
        ("uncertainty", "hash_matches_manifest"),
    }


def test_a_restored_database_that_does_not_exist(seeded: Seeded) -> None:
    entry = manifest_entry(seeded.conn, seeded.ns, seeded.db)
    results = validate_restored(seeded.conn, entry, namespace="nowhere", database="nothing")
    assert all(not r.passed for r in results)
    assert {r.check for r in results} == {
        "schema_matches_manifest",
        "tables_match_manifest",
        "count_matches_manifest",
        "hash_matches_manifest",
    }


def test_a_document_whose_object_is_missing(seeded: Seeded) -> None:
    seeded.use()
    target, key = seeded.conn.run_one(
        "SELECT VALUE [<string> id, storage_key] FROM document LIMIT 1"
    )[0]
    assert seeded.documents.head(key) is not None
    seeded.documents.delete(key)
    failure = only_failure(validate(seeded, documents=seeded.documents))
    assert (failure.table, failure.check) == ("document", "document_objects_exist")
    assert failure.failing_ids == [target]
    assert key in failure.detail
    # without a document store, there is no cross-store check
    assert "document_objects_exist" not in {r.check for r in validate(seeded)}


def test_many_documents_are_listed_not_asked_one_by_one(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "LIST_THRESHOLD", 0)
    seeded.use()
    target, key = seeded.conn.run_one(
        "SELECT VALUE [<string> id, storage_key] FROM document LIMIT 1"
    )[0]
    seeded.documents.delete(key)
    asked: list[str] = []
    head = seeded.documents.head
    monkeypatch.setattr(seeded.documents, "head", lambda k: asked.append(k) or head(k))
    failure = only_failure(validate(seeded, documents=seeded.documents))
    assert failure.failing_ids == [target]
    assert asked == [key]  # only the key the listing did not show


def test_failing_ids_are_bounded_by_sample(seeded: Seeded) -> None:
    plant(seeded, "UPDATE attribute SET memory_category = 'gossip' RETURN NONE")
    failure = only_failure(validate(seeded, sample=2))
    assert len(failure.failing_ids) == 2
    seeded.use()
    total = seeded.conn.run_one("SELECT count() FROM attribute GROUP ALL")[0]["count"]
    assert f"{total} of {total} records unexpected" in failure.detail
