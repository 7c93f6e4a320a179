"""The seeded Spectron instance: layout, validity, determinism (spectron_backup.seed)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from spectron_backup import seed as seed_module
from spectron_backup.errors import OperationFailed, UsageError
from spectron_backup.seed import (
    DEFAULT_NOW,
    SeedPlan,
    SeedResult,
    context_ids,
    context_schema,
    seed_instance,
)
from spectron_backup.surreal import SurrealConnection, connect

WIDTH = 24
PLAN = SeedPlan(contexts=2, scale=0.2, embedding_width=WIDTH)
NOW = "d'2026-11-24T00:00:00Z'"
ARGON2 = re.compile(r"^\$argon2id\$v=19\$m=65536,t=3,p=4\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$")


def reference_tables(name: str) -> list[str]:
    text = resources.files("spectron_backup").joinpath("schema", name).read_text("utf-8")
    return re.findall(r"^DEFINE TABLE (\w+)", text, flags=re.MULTILINE)


class Seeded:
    def __init__(self, plan: SeedPlan) -> None:
        self.conn: SurrealConnection = connect("mem://")
        self.documents: list[tuple[str, bytes]] = []
        self.messages: list[str] = []
        self.result: SeedResult = seed_instance(
            self.conn,
            plan,
            documents=lambda key, data: self.documents.append((key, data)),
            progress=self.messages.append,
        )

    def run(self, where: str, sql: str):
        namespace, database = where.split("/")
        self.conn.use(namespace, database)
        return self.conn.run_one(sql)

    def count(self, where: str, table: str, condition: str = "") -> int:
        rows = self.run(where, f"SELECT count() FROM {table} {condition} GROUP ALL")
        return rows[0]["count"] if rows else 0

    def texts(self) -> dict[tuple[str, str], list[str]]:
        """Every record of every table as `<string>` text, per database and table."""
        out = {}
        for where in self.result.records:
            info = self.run(where, "INFO FOR DB")
            for table in sorted(info["tables"]):
                out[(where, table)] = self.run(where, f"SELECT VALUE <string> $this FROM {table}")
        return out

    def context_wheres(self) -> list[str]:
        return [f"{c.namespace}/{c.database}" for c in self.result.contexts]


@pytest.fixture(scope="module")
def seeded() -> Seeded:
    instance = Seeded(PLAN)
    yield instance
    instance.conn.close()


def test_control_plane_binds_each_context_to_an_existing_database(seeded: Seeded) -> None:
    for table in reference_tables("metadata.surql"):
        assert seeded.count("spectron/metadata", table) > 0, table
    rows = seeded.run(
        "spectron/metadata", "SELECT meta::id(id) AS id, namespace, database FROM context"
    )
    bound = {row["id"]: (row["namespace"], row["database"]) for row in rows}
    assert sorted(bound) == sorted(context_ids(2)) == ["acme-prod", "globex-main"]
    assert len(set(bound.values())) == 2
    assert len({ns for ns, _ in bound.values()}) == 2  # distinct namespaces too
    for info in seeded.result.contexts:
        assert bound[info.context_id] == (info.namespace, info.database)
        assert seeded.conn.database_exists(info.namespace, info.database)
    assert seeded.count("spectron/_jobqueue", "job") > 0


def test_every_reference_table_has_records_and_counts_are_reported(seeded: Seeded) -> None:
    tables = reference_tables("context.surql")
    assert len(tables) == 14
    for where in seeded.context_wheres():
        reported = seeded.result.records[where]
        for table in tables:
            assert seeded.count(where, table) > 0, (where, table)
            assert seeded.count(where, table) == reported[table], (where, table)
    assert seeded.result.documents == sum(
        seeded.count(where, "document") for where in seeded.context_wheres()
    )
    assert any("acme-prod" in message for message in seeded.messages)


def test_embeddings_have_the_configured_width_and_index_dimension(seeded: Seeded) -> None:
    for where in seeded.context_wheres():
        for table in ("knowledge_chunk", "memory_chunk"):
            lengths = seeded.run(
                where, f"SELECT VALUE array::len(embedding) FROM {table} WHERE embedding != NONE"
            )
            assert lengths and set(lengths) == {WIDTH}, (where, table)
            indexes = seeded.run(where, f"INFO FOR TABLE {table}")["indexes"]
            assert f"DIMENSION {WIDTH} " in indexes["embedding_index"]


def test_validity_windows_expired_and_future(seeded: Seeded) -> None:
    for where in seeded.context_wheres():
        # NONE sorts before every datetime: `valid_until < now` alone also matches open rows
        expired = seeded.count(
            where, "attribute", f"WHERE valid_until != NONE AND valid_until < {NOW}"
        )
        future = seeded.count(where, "attribute", f"WHERE valid_until > {NOW}")
        total = seeded.count(where, "attribute")
        assert expired > 0 and future > 0, where
        assert expired + future < total / 2  # most attributes are open-ended
        past = f"WHERE valid_until != NONE AND valid_until < {NOW}"
        assert seeded.count(where, "relates_to", past) > 0
        superseding = seeded.run(
            where,
            "SELECT supersedes.valid_until AS until, valid_from FROM attribute "
            "WHERE supersedes != NONE",
        )
        for row in superseding:
            assert row["until"] == row["valid_from"]
        ages = seeded.run(
            where,
            f"SELECT VALUE duration::days({NOW} - created_at) FROM turn",
        )
        assert min(ages) >= 0 and max(ages) <= 401 and max(ages) - min(ages) > 30


def test_records_are_realistic_and_linked(seeded: Seeded) -> None:
    where = seeded.context_wheres()[0]
    categories = set(seeded.run(where, "SELECT VALUE memory_category FROM attribute"))
    assert categories == {"identity", "knowledge", "context"}
    roles = set(seeded.run(where, "SELECT VALUE role FROM turn"))
    assert {"user", "assistant"} <= roles <= {"user", "assistant", "system", "tool"}
    ids = seeded.run(where, "SELECT VALUE <string> id FROM entity")
    assert "entity:['person', 'alice']" in ids
    paths = seeded.run(where, "SELECT VALUE paths FROM scope_sets")
    assert ["org/acme"] in paths and ["org/acme", "agent/support-bot", "user/alice"] in paths
    # links point at existing records
    dangling = seeded.run(
        where,
        "SELECT VALUE id FROM knowledge_chunk WHERE document.id = NONE; "
        "SELECT VALUE id FROM turn WHERE session.id = NONE",
    )
    assert dangling == []
    assert seeded.run(where, "SELECT VALUE id FROM attribute WHERE entity.id = NONE") == []
    assert seeded.run(where, "SELECT VALUE id FROM relates_to WHERE in.id = NONE") == []
    assert (
        seeded.run(where, "SELECT VALUE id FROM memory_chunk WHERE turn != NONE AND turn.id = NONE")
        == []
    )
    edges = seeded.run(where, "SELECT VALUE count(->knowledge_has_keyword) FROM document")
    assert sum(edges) == seeded.count(where, "knowledge_has_keyword")


def test_document_sink_gets_each_documents_bytes(seeded: Seeded) -> None:
    received = dict(seeded.documents)
    assert len(received) == len(seeded.documents) == seeded.result.documents
    for where, info in zip(seeded.context_wheres(), seeded.result.contexts, strict=True):
        rows = seeded.run(where, "SELECT storage_key, size_bytes, content_hash FROM document")
        for row in rows:
            key = row["storage_key"]
            assert key.startswith(f"docs/{info.context_id}/")
            assert len(received[key]) == row["size_bytes"]
            assert re.fullmatch(r"blake3:[0-9a-f]{64}", row["content_hash"])
            assert row["content_hash"] == seed_module._content_hash(received[key])


def test_api_keys_are_stored_as_argon2_hashes(seeded: Seeded) -> None:
    for table in ("api_key", "context_api_key"):
        hashes = seeded.run("spectron/metadata", f"SELECT VALUE hash FROM {table}")
        assert hashes and all(ARGON2.match(h) for h in hashes), table
        assert len(set(hashes)) == len(hashes)


def test_same_plan_gives_identical_records_and_another_seed_differs() -> None:
    plan = SeedPlan(contexts=2, scale=0.1, embedding_width=8, seed=7)
    first, second = Seeded(plan), Seeded(plan)
    texts = first.texts()
    assert texts == second.texts()
    assert first.documents == second.documents
    assert len(texts) == 4 + 1 + 2 * 14
    other = Seeded(SeedPlan(contexts=2, scale=0.1, embedding_width=8, seed=8))
    other_texts = other.texts()
    assert other_texts.keys() == texts.keys()
    for key in texts:
        if key[1] in ("scope_sets", "context"):
            continue  # fixed by the plan's layout, not by the seed
        assert other_texts[key] != texts[key], key
    for instance in (first, second, other):
        instance.conn.close()


def test_scale_one_is_about_a_thousand_records_mostly_in_the_big_tables() -> None:
    instance = Seeded(SeedPlan(contexts=1, scale=1.0, embedding_width=4))
    counts = instance.result.records[instance.context_wheres()[0]]
    total = sum(counts.values())
    assert 900 <= total <= 1200
    big = sum(counts[t] for t in ("attribute", "turn", "knowledge_chunk", "memory_chunk"))
    assert big > 0.7 * total
    instance.conn.close()


def test_seeding_a_non_empty_database_is_refused(seeded: Seeded) -> None:
    with pytest.raises(UsageError, match="already has tables"):
        seed_instance(seeded.conn, PLAN)


def test_a_failing_insert_names_its_table(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = context_schema(4).replace(
        "DEFINE FIELD seq ON turn TYPE int", "DEFINE FIELD seq ON turn TYPE string"
    )
    monkeypatch.setattr(seed_module, "context_schema", lambda width: broken)
    with connect("mem://") as conn, pytest.raises(OperationFailed, match="'turn'"):
        seed_instance(conn, SeedPlan(contexts=1, scale=0.05, embedding_width=4))


def test_plan_defaults_and_names() -> None:
    assert SeedPlan().now == DEFAULT_NOW
    assert context_ids(7) == [
        "acme-prod",
        "globex-main",
        "initech-dev",
        "umbrella-staging",
        "hooli-prod",
        "stark-eu",
        "ctx-7",
    ]
    assert "HNSW DIMENSION 3072 " in context_schema(3072)
    with pytest.raises(UsageError):
        SeedPlan(contexts=0)
    with pytest.raises(UsageError):
        SeedPlan(scale=0)
