"""The expire sweep's core on a small hand-built Context (mem://).

The expected deletions are worked out by hand below from the records' times, scopes and the
policies, not by the code under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from spectron_backup.config import SweepFieldsConfig, SweepTablesConfig
from spectron_backup.errors import UsageError
from spectron_backup.policies import parse_policies
from spectron_backup.seed import context_schema
from spectron_backup.surreal import SurrealConnection
from spectron_backup.sweep import (
    SweepTable,
    index_advice,
    index_fields,
    sweep_clock,
    sweep_database,
    sweep_tables,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
NS, DB = "ctx_ns", "ctx_db"
TABLES = ("entity", "attribute", "relates_to", "instruction", "uncertainty", "scope_sets")

POLICIES = parse_policies(
    [
        {"scope": {"org": "acme"}, "memory_category": "context", "ttl": "30d"},  # rule 1
        {
            "scope": {"org": "acme", "agent": "support-bot"},
            "memory_category": "unknowns",
            "ttl": "14d",
        },  # rule 2
        {"scope": ["org/globex"], "memory_category": "knowledge", "ttl": "10d"},  # rule 3
    ]
)
# defaults: identity, knowledge, instructions indefinite; context 7d; unknowns 30d


def ago(days: float) -> str:
    moment = (NOW - timedelta(days=days)).replace(tzinfo=None)
    return "d'" + moment.isoformat(timespec="microseconds") + "Z'"


E1, E2, E3 = "entity:['person','alice']", "entity:['person','bob']", "entity:['org','old']"
E4, E5, E6 = "entity:['org','new']", "entity:['topic','g']", "entity:['topic','h']"


def _entity(rid: str, category: str, scope: str, days: float) -> str:
    return (
        f"{{ id: {rid}, name: 'n', type: 't', memory_category: '{category}', "
        f"scope: {scope}, created_at: {ago(days)} }}"
    )


def _attribute(key: str, entity: str, category: str, scope: str, days: float, vu: str = "") -> str:
    extra = f", valid_until: {vu}" if vu else ""
    return (
        f"{{ id: attribute:{key}, entity: {entity}, key: 'k', value: 'v', "
        f"memory_category: '{category}', scope: {scope}, created_at: {ago(days)}{extra} }}"
    )


def _relation(key: str, a: str, b: str, category: str, scope: str, days: float, vu: str = ""):
    extra = f", valid_until: {vu}" if vu else ""
    return (
        f"{{ id: relates_to:{key}, in: {a}, out: {b}, label: 'l', memory_category: '{category}', "
        f"scope: {scope}, created_at: {ago(days)}{extra} }}"
    )


S_ACME, S_BOT, S_GLOBEX = "[scope_sets:1]", "[scope_sets:2]", "[scope_sets:3]"

DATA = [
    "INSERT INTO scope_sets [{ id: scope_sets:1, paths: ['org/acme'] }, "
    "{ id: scope_sets:2, paths: ['org/acme', 'agent/support-bot'] }, "
    "{ id: scope_sets:3, paths: ['org/globex'] }]",
    "INSERT INTO entity ["
    + ", ".join(
        [
            _entity(E1, "identity", S_ACME, 400),  # indefinite: kept
            _entity(E2, "context", S_GLOBEX, 10),  # default 7d: expired, but A5 survives: held
            _entity(E3, "context", S_ACME, 40),  # rule 1 30d: deleted
            _entity(E4, "context", S_ACME, 20),  # rule 1 30d: kept
            _entity(E5, "knowledge", S_GLOBEX, 11),  # rule 3 10d: deleted (only R2 refers)
            _entity(E6, "knowledge", S_ACME, 500),  # knowledge default indefinite: kept
        ]
    )
    + "]",
    "INSERT INTO attribute ["
    + ", ".join(
        [
            _attribute("a1", E1, "identity", S_ACME, 100, ago(1)),  # valid_until past: deleted
            _attribute("a2", E1, "identity", S_ACME, 100, ago(-5)),  # valid_until future: kept
            _attribute("a3", E1, "identity", S_ACME, 1000),  # indefinite, no valid_until: kept
            _attribute("a4", E4, "context", S_ACME, 31),  # rule 1 30d: deleted
            _attribute("a5", E2, "context", S_ACME, 20),  # rule 1 30d: kept (holds E2)
            _attribute("a6", E4, "context", S_GLOBEX, 8, ago(-10)),  # 7d elapsed, still valid
            _attribute("a7", E6, "context", "[]", 8),  # default 7d: deleted
            _attribute("a8", E6, "knowledge", S_BOT, 2000),  # indefinite: kept
        ]
    )
    + "]",
    "INSERT RELATION INTO relates_to ["
    + ", ".join(
        [
            _relation("r1", E1, E6, "identity", S_ACME, 50, ago(2)),  # valid_until: deleted
            _relation("r2", E5, E6, "knowledge", S_GLOBEX, 12),  # rule 3 10d: deleted
            # OR of clauses: acme's clause gets rule 1 (30d), so kept at 15d
            _relation("r3", E1, E4, "context", "[scope_sets:3, scope_sets:1]", 15),
            _relation("r4", E1, E6, "context", S_ACME, 1),  # kept
        ]
    )
    + "]",
    "INSERT INTO instruction ["
    f"{{ id: instruction:i1, label: 'x', description: 'd', scope: {S_ACME}, "
    f"created_at: {ago(3000)} }}, "
    f"{{ id: instruction:i2, label: 'y', description: 'd', scope: [], created_at: {ago(1)} }}]",
    "INSERT INTO uncertainty ["
    f"{{ id: uncertainty:u1, about: 'a', reason: 'r', scope: {S_BOT}, created_at: {ago(15)} }}, "
    f"{{ id: uncertainty:u2, about: 'a', reason: 'r', scope: {S_ACME}, created_at: {ago(15)} }}, "
    f"{{ id: uncertainty:u3, about: 'a', reason: 'r', scope: {S_BOT}, created_at: {ago(13)} }}, "
    f"{{ id: uncertainty:u4, about: 'a', reason: 'r', scope: [], created_at: {ago(31)} }}]",
]

# (table, category, reason, policy) -> ids, in the engine's own id text
EXPECTED = {
    ("attribute", "identity", "valid_until", "-"): {"attribute:a1"},
    ("attribute", "context", "ttl", "rule 1"): {"attribute:a4"},
    ("attribute", "context", "ttl", "default"): {"attribute:a7"},
    ("relates_to", "identity", "valid_until", "-"): {"relates_to:r1"},
    ("relates_to", "knowledge", "ttl", "rule 3"): {"relates_to:r2"},
    ("uncertainty", "unknowns", "ttl", "rule 2"): {"uncertainty:u1"},
    ("uncertainty", "unknowns", "ttl", "default"): {"uncertainty:u4"},
    ("entity", "context", "ttl", "rule 1"): {"entity:['org', 'old']"},
    ("entity", "knowledge", "ttl", "rule 3"): {"entity:['topic', 'g']"},
}
EXPECTED_IDS = set().union(*EXPECTED.values())
HELD = {"entity:['person', 'bob']"}


@pytest.fixture
def conn() -> Iterator[SurrealConnection]:
    connection = SurrealConnection("mem://")
    connection.run(f"DEFINE NAMESPACE {NS}; USE NS {NS}; DEFINE DATABASE {DB};")
    connection.use(NS, DB)
    connection.run(context_schema(8))
    connection.run(";\n".join(DATA) + ";")
    yield connection
    connection.close()


def records(conn: SurrealConnection) -> dict[str, str]:
    """id text -> record text, over every table of interest."""
    conn.use(NS, DB)
    out: dict[str, str] = {}
    for table in TABLES:
        for rid, text in conn.run_one(f"SELECT VALUE [<string> id, <string> $this] FROM {table}"):
            out[rid] = text
    return out


def sweep(conn: SurrealConnection, **kwargs):
    kwargs.setdefault("dry_run", False)
    return sweep_database(conn, NS, DB, POLICIES, now=NOW, **kwargs)


def reported_keys(report) -> dict[tuple[str, str, str, str], int]:
    return dict(report.deleted)


def test_fixture_as_intended(conn: SurrealConnection) -> None:
    assert len(records(conn)) == 3 + 6 + 8 + 4 + 2 + 4


def test_dry_run_reports_exactly_and_changes_nothing(conn: SurrealConnection) -> None:
    before = records(conn)
    report = sweep(conn, dry_run=True)
    assert records(conn) == before
    assert report.dry_run
    assert reported_keys(report) == {key: len(ids) for key, ids in EXPECTED.items()}
    assert {key: set(ids) for key, ids in report.samples.items()} == EXPECTED
    assert report.held == 1 and set(report.held_samples) == HELD
    assert report.refused == []
    doc = report.to_json()
    assert doc["deleted_total"] == len(EXPECTED_IDS)
    assert doc["held"] == {"count": 1, "sample_ids": sorted(HELD)}


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_real_run_deletes_exactly_then_nothing(conn: SurrealConnection, batch_size: int) -> None:
    before = records(conn)
    report = sweep(conn, batch_size=batch_size, page_size=batch_size)
    after = records(conn)
    assert set(before) - set(after) == EXPECTED_IDS
    assert {k: v for k, v in before.items() if k not in EXPECTED_IDS} == after  # untouched
    assert reported_keys(report) == {key: len(ids) for key, ids in EXPECTED.items()}
    assert report.held == 1 and set(report.held_samples) == HELD
    # the held entity keeps its attribute; no attribute points at a deleted entity
    dangling = conn.run_one("SELECT VALUE <string> id FROM attribute WHERE entity.id = NONE")
    assert dangling == []

    second = sweep(conn, batch_size=batch_size, page_size=batch_size)
    assert second.deleted == {} and records(conn) == after
    assert second.held == 1


def test_future_and_missing_valid_until_and_indefinite_never_touched(
    conn: SurrealConnection,
) -> None:
    sweep(conn)
    left = records(conn)
    for rid in ("attribute:a2", "attribute:a6", "attribute:a3", "attribute:a8"):
        assert rid in left
    assert "instruction:i1" in left and "instruction:i2" in left
    assert "entity:['person', 'alice']" in left and "entity:['topic', 'h']" in left


def test_valid_until_that_is_not_a_datetime_is_never_taken_for_expired() -> None:
    # A schemaless table holds whatever Spectron (or a migration) wrote: NULL, strings,
    # numbers and durations all sort before every datetime in SurrealQL.
    conn = SurrealConnection("mem://")
    conn.run(f"DEFINE NAMESPACE {NS}; USE NS {NS}; DEFINE DATABASE {DB};")
    conn.use(NS, DB)
    values = {
        "null": "NULL",
        "text": "'2099-01-01T00:00:00Z'",
        "number": "5",
        "duration": "1d",
        "past": ago(1),
    }
    conn.run(
        "DEFINE TABLE uncertainty SCHEMALESS; "
        + " ".join(
            f"CREATE uncertainty:{name}_{age} SET scope = [], created_at = {ago(age)}, "
            f"valid_until = {value};"
            for name, value in values.items()
            for age in (1, 40)  # young, and past the unknowns' default TTL of 30 days
        )
    )
    report = sweep(conn)
    left = set(conn.run_one("SELECT VALUE <string> id FROM uncertainty"))
    assert left == {
        "uncertainty:null_1",
        "uncertainty:text_1",
        "uncertainty:number_1",
        "uncertainty:duration_1",
        # not datetimes: whether they are still valid cannot be told, so the TTL spares them
        "uncertainty:text_40",
        "uncertainty:number_40",
        "uncertainty:duration_40",
    }
    assert reported_keys(report) == {
        ("uncertainty", "unknowns", "valid_until", "-"): 2,  # past_1, past_40
        ("uncertainty", "unknowns", "ttl", "default"): 1,  # null_40: NULL is no valid_until
    }
    conn.close()


def test_the_longest_ttl_a_rule_may_give_sweeps_without_overflow(conn: SurrealConnection) -> None:
    # "Never", written as the longest TTL allowed, for every category (9999y overflowed).
    forever = parse_policies(
        [{"memory_category": c, "ttl": "1000y"} for c in ("identity", "context", "unknowns")]
    )
    report = sweep_database(conn, NS, DB, forever, now=NOW, dry_run=True)
    assert {reason for _table, _cat, reason, _rule in report.deleted} == {"valid_until"}


def test_a_scope_in_another_shape_never_falls_back_to_the_default_ttl() -> None:
    # A rule keeps acme's unknowns a year; the default would be 30 days. Records 40 days old.
    policies = parse_policies(
        [{"scope": {"org": "acme"}, "memory_category": "unknowns", "ttl": "1y"}]
    )
    conn = SurrealConnection("mem://")
    conn.run(f"DEFINE NAMESPACE {NS}; USE NS {NS}; DEFINE DATABASE {DB};")
    conn.use(NS, DB)
    scopes = {
        "links": "[scope_sets:1]",  # the reference schema's shape
        "one_link": "scope_sets:1",  # a single link
        "inline": "['org/acme']",  # paths written inline: unreadable as a scope
        "dangling": "[scope_sets:404]",  # a link to nothing: unreadable
        "none": "[]",  # no scope: the default applies
    }
    conn.run(
        "DEFINE TABLE uncertainty SCHEMALESS; CREATE scope_sets:1 SET paths = ['org/acme'];"
        + "".join(
            f"CREATE uncertainty:{name} SET scope = {scope}, created_at = {ago(40)};"
            for name, scope in scopes.items()
        )
    )
    report = sweep_database(conn, NS, DB, policies, now=NOW, dry_run=False)
    left = set(conn.run_one("SELECT VALUE <string> id FROM uncertainty"))
    assert left == {f"uncertainty:{n}" for n in ("links", "one_link", "inline", "dangling")}
    assert reported_keys(report) == {("uncertainty", "unknowns", "ttl", "default"): 1}
    conn.close()


def test_grace_delays_valid_until(conn: SurrealConnection) -> None:
    report = sweep(conn, dry_run=True, valid_until_grace=timedelta(days=3))
    keys = reported_keys(report)
    assert ("attribute", "identity", "valid_until", "-") not in keys  # a1 ended 1 day ago
    assert ("relates_to", "identity", "valid_until", "-") not in keys  # r1 ended 2 days ago
    assert keys[("attribute", "context", "ttl", "rule 1")] == 1


def test_guard_refuses_per_table_and_force_proceeds(conn: SurrealConnection) -> None:
    before = records(conn)
    report = sweep(conn, max_delete_fraction=0.3, guard_allowance=0)
    refused = {r.table: (r.would_delete, r.total) for r in report.refused}
    # attribute 3/8, relates_to 2/4, uncertainty 2/4 are above 0.3
    assert refused == {"attribute": (3, 8), "relates_to": (2, 4), "uncertainty": (2, 4)}
    # r2 survives, so e5 is held too; e3 (1 of 6) still goes
    assert report.held == 2
    assert set(report.held_samples) == HELD | {"entity:['topic', 'g']"}
    after = records(conn)
    assert set(before) - set(after) == {"entity:['org', 'old']"}
    assert "3 of 8" in report.to_json()["refused"][0]["message"]

    forced = sweep(conn, max_delete_fraction=0.3, guard_allowance=0, force=True)
    assert forced.refused == []
    # still reported: the tables the guard would have refused without --force
    assert {r.table for r in forced.forced_past} == {"attribute", "relates_to", "uncertainty"}
    assert set(before) - set(records(conn)) == EXPECTED_IDS


def test_the_guard_lets_a_few_records_of_a_small_table_go(conn: SurrealConnection) -> None:
    """3 of 8 attributes is above a 0.3 share, but within the allowance: a quiet Context's
    small tables must not fail every hourly run. Above the allowance the share rules."""
    before = records(conn)
    report = sweep(conn, max_delete_fraction=0.3, guard_allowance=2)
    refused = {r.table: (r.would_delete, r.total) for r in report.refused}
    assert refused == {"attribute": (3, 8)}  # relates_to and uncertainty: 2 each, allowed
    assert {"relates_to", "uncertainty"} <= {table for table, *_ in reported_keys(report)}
    allowed = sweep(conn, max_delete_fraction=0.3, guard_allowance=3)
    assert allowed.refused == []
    assert set(before) - set(records(conn)) == EXPECTED_IDS


def test_missing_database_is_not_created(conn: SurrealConnection) -> None:
    with pytest.raises(UsageError):
        sweep_database(conn, NS, "nope", POLICIES, now=NOW, dry_run=True)
    assert "nope" not in conn.databases(NS)


def test_missing_tables_are_skipped(conn: SurrealConnection) -> None:
    conn.run("REMOVE TABLE uncertainty; REMOVE TABLE instruction;")
    report = sweep(conn, dry_run=True)
    assert {key[0] for key in report.deleted} == {"attribute", "relates_to", "entity"}


@pytest.mark.parametrize("batch_size", [1, 2])
def test_index_order_does_not_break_paging(conn: SurrealConnection, batch_size: int) -> None:
    # with these indexes the engine returns candidates in index order, not id order
    conn.run(
        "DEFINE INDEX vu ON attribute FIELDS valid_until; "
        "DEFINE INDEX cat_created ON attribute FIELDS memory_category, created_at; "
        "DEFINE INDEX cat_created ON entity FIELDS memory_category, created_at;"
    )
    # older than a4 but with a larger id: index order (created_at) differs from id order
    conn.run("INSERT INTO attribute [" + _attribute("z1", E1, "context", S_ACME, 50) + "]")
    before = records(conn)
    sweep(conn, batch_size=batch_size, page_size=batch_size)
    assert set(before) - set(records(conn)) == EXPECTED_IDS | {"attribute:z1"}


def test_index_advice_names_missing_sweep_indexes() -> None:
    assert index_fields("DEFINE INDEX t ON attribute FIELDS valid_from, valid_until") == [
        "valid_from",
        "valid_until",
    ]
    fields = {f: "" for f in ("valid_from", "valid_until", "created_at", "memory_category")}
    # the reference schema's (valid_from, valid_until) index cannot serve a valid_until range
    bare = {
        "fields": fields,
        "indexes": {
            "temporal_index": "DEFINE INDEX temporal_index ON attribute FIELDS valid_from, valid_until"
        },
    }
    assert index_advice(SweepTable("attribute"), bare) == [
        "DEFINE INDEX sweep_valid_until ON attribute FIELDS valid_until;",
        "DEFINE INDEX sweep_created_at ON attribute FIELDS memory_category, created_at;",
    ]
    indexed = {
        "fields": fields,
        "indexes": {
            "a": "DEFINE INDEX a ON attribute FIELDS valid_until",
            "b": "DEFINE INDEX b ON attribute FIELDS memory_category, created_at",
        },
    }
    assert index_advice(SweepTable("attribute"), indexed) == []
    plain = {"fields": {"created_at": ""}, "indexes": {}}
    assert index_advice(SweepTable("uncertainty", category="unknowns"), plain) == [
        "DEFINE INDEX sweep_created_at ON uncertainty FIELDS created_at;"
    ]


@pytest.mark.parametrize(("page_size", "batch_size"), [(1, 3), (3, 1), (2, 2)])
def test_read_pages_and_delete_batches_are_independent(
    conn: SurrealConnection, page_size: int, batch_size: int
) -> None:
    before = records(conn)
    report = sweep(conn, batch_size=batch_size, page_size=page_size)
    assert set(before) - set(records(conn)) == EXPECTED_IDS
    assert reported_keys(report) == {key: len(ids) for key, ids in EXPECTED.items()}


class WriterBeforeDeletes(SurrealConnection):
    """A connection on which another writer's statements land just before the sweep's first
    DELETE of a table: after the plan is made, before it is carried out, the moment a
    concurrent writer can hurt most. `writes` maps a table name to the SurrealQL to run."""

    def __init__(self, url: str, writes: dict[str, str]) -> None:
        super().__init__(url)
        self.writes = dict(writes)

    def run(self, sql: str, vars=None, *, txn=None):  # type: ignore[no-untyped-def]
        for table in list(self.writes):
            if sql.startswith(f"BEGIN; LET $ids = [{table}:"):
                super().run(self.writes.pop(table))
        return super().run(sql, vars, txn=txn)


def test_writer_during_the_sweep_loses_nothing_that_is_not_expired() -> None:
    conn = WriterBeforeDeletes(
        "mem://",
        {
            # before anything is deleted: a4 (planned: ttl) is given a future valid_until, a7
            # (planned: 8 days old under context's default 7d) moves to acme's scope (rule 1,
            # 30d), new facts arrive, one of them an already-ended attribute (not in the plan)
            "attribute": (
                f"UPDATE attribute:a4 SET valid_until = {ago(-30)}; "
                f"UPDATE attribute:a7 SET scope = {S_ACME}; "
                "INSERT INTO entity ["
                + _entity("entity:['topic','new']", "knowledge", S_ACME, 0)
                + "]; INSERT INTO attribute ["
                + _attribute("w1", E4, "context", S_ACME, 0)
                + ", "
                + _attribute("w2", E1, "identity", S_ACME, 0, ago(1))
                + "];"
            ),
            # after attributes and relations are gone, before entities: the writer refers to
            # E3 by a new attribute and to E5 by a new edge, both planned for deletion
            "entity": (
                "INSERT INTO attribute ["
                + _attribute("w3", E3, "context", S_ACME, 0)
                + "]; INSERT RELATION INTO relates_to ["
                + _relation("w4", "entity:['topic','new']", E5, "knowledge", S_ACME, 0)
                + "];"
            ),
        },
    )
    conn.run(f"DEFINE NAMESPACE {NS}; USE NS {NS}; DEFINE DATABASE {DB};")
    conn.use(NS, DB)
    conn.run(context_schema(8))
    conn.run(";\n".join(DATA) + ";")
    before = records(conn)

    report = sweep(conn, batch_size=2, page_size=2)
    assert conn.writes == {}, "the writer did not run at both moments"
    after = records(conn)

    spared = {"attribute:a4", "attribute:a7", "entity:['org', 'old']", "entity:['topic', 'g']"}
    assert set(before) - set(after) == EXPECTED_IDS - spared
    written = {"attribute:w1", "attribute:w2", "attribute:w3", "relates_to:w4"}
    assert written | {"entity:['topic', 'new']"} <= set(after)
    assert "d'" in after["attribute:a4"] and after["attribute:a4"] != before["attribute:a4"]
    # the report says what happened, not what was planned
    assert report.total_deleted == len(EXPECTED_IDS - spared)
    assert report.changed == 2 and set(report.changed_samples) == {"attribute:a4", "attribute:a7"}
    assert report.held == 3
    assert set(report.held_samples) == HELD | {"entity:['org', 'old']", "entity:['topic', 'g']"}
    # nothing points at nothing: every attribute's entity and every edge's ends exist
    assert conn.run_one("SELECT VALUE <string> id FROM attribute WHERE entity.id = NONE") == []
    assert (
        conn.run_one("SELECT VALUE <string> id FROM relates_to WHERE in.id = NONE OR out.id = NONE")
        == []
    )
    conn.close()


def test_table_and_field_names_come_from_configuration() -> None:
    """A deployment whose attributes live in `fact` with `ends_at` for valid_until."""

    def renamed(text: str) -> str:
        return text.replace("attribute", "fact").replace("valid_until", "ends_at")

    conn = SurrealConnection("mem://")
    conn.run(f"DEFINE NAMESPACE {NS}; USE NS {NS}; DEFINE DATABASE {DB};")
    conn.use(NS, DB)
    conn.run(renamed(context_schema(8)))
    conn.run(renamed(";\n".join(DATA) + ";"))
    before = set(conn.run_one("SELECT VALUE <string> id FROM fact"))
    report = sweep_database(
        conn,
        NS,
        DB,
        POLICIES,
        now=NOW,
        dry_run=False,
        tables=SweepTablesConfig(attribute="fact"),
        fields=SweepFieldsConfig(valid_until="ends_at"),
    )
    expected = {renamed(i) for i in EXPECTED_IDS if i.startswith("attribute:")}
    assert before - set(conn.run_one("SELECT VALUE <string> id FROM fact")) == expected
    assert report.deleted[("fact", "identity", "valid_until", "-")] == 1  # a1, by ends_at
    assert report.held == 1  # bob is still held by his `fact`
    conn.close()


class QueryLog(SurrealConnection):
    """Remembers the sweep's candidate reads (the paged SELECTs)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads: list[str] = []

    def run_one(self, sql: str, vars=None, *, txn=None):  # type: ignore[no-untyped-def]
        if " ORDER BY rid LIMIT " in sql and not sql.endswith("EXPLAIN"):
            self.reads.append(sql)
        return super().run_one(sql, vars, txn=txn)


def _scans(plan: object) -> list[str]:
    """The scan operators of an EXPLAIN plan, as `operator:table-or-index`."""
    if isinstance(plan, list):
        return [s for p in plan for s in _scans(p)]
    if not isinstance(plan, dict):
        return []
    found = []
    if str(plan.get("operator", "")).endswith("Scan"):
        attributes = plan.get("attributes") or {}
        found.append(f"{plan['operator']}:{attributes.get('index') or attributes.get('table')}")
    return found + _scans(plan.get("children") or [])


@pytest.mark.parametrize("indexed", [False, True])
def test_candidate_reads_use_the_advised_indexes(indexed: bool) -> None:
    conn = QueryLog("mem://")
    conn.run(f"DEFINE NAMESPACE {NS}; USE NS {NS}; DEFINE DATABASE {DB};")
    conn.use(NS, DB)
    conn.run(context_schema(8))
    conn.run(";\n".join(DATA) + ";")
    advice = []
    for table in sweep_tables(SweepTablesConfig()):
        advice += index_advice(table, conn.run_one(f"INFO FOR TABLE {table.name}"))
    # the reference schema's temporal_index (valid_from, valid_until) serves no sweep read
    assert "DEFINE INDEX sweep_valid_until ON attribute FIELDS valid_until;" in advice
    if indexed:
        conn.run(" ".join(advice))
        assert all(
            index_advice(t, conn.run_one(f"INFO FOR TABLE {t.name}")) == []
            for t in sweep_tables(SweepTablesConfig())
        )
    sweep_database(conn, NS, DB, POLICIES, now=NOW, dry_run=True)
    assert len(conn.reads) >= 5
    for read in conn.reads:
        scans = _scans(conn.run_one(read + " EXPLAIN"))
        assert len(scans) == 1, (read, scans)
        if indexed:
            assert scans[0].startswith("IndexScan:sweep_"), (read, scans)
        else:
            assert scans[0].startswith("TableScan:"), (read, scans)
    conn.close()


def test_a_real_sweep_refuses_a_future_now_a_dry_run_allows_it() -> None:
    real = datetime(2026, 11, 24, 12, tzinfo=UTC)
    ahead = real + timedelta(days=30)
    with pytest.raises(UsageError, match="in the future"):
        sweep_clock(ahead, False, real)
    assert sweep_clock(ahead, True, real) == ahead  # a preview of what would expire then
    assert sweep_clock(real + timedelta(minutes=1), False, real) == real + timedelta(minutes=1)
    assert sweep_clock(real - timedelta(days=3), False, real) == real - timedelta(days=3)
    assert sweep_clock(None, False, real) == real


def test_cli_expire_at_a_future_time_is_exit_2_before_anything_runs(tmp_path, cli) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"source: {{url: 'mem://'}}\ntarget: {{url: 'file://{tmp_path}/t'}}\n")
    result = cli("expire", "--config", str(config), "--now", "2099-01-01T00:00:00Z")
    assert result.returncode == 2
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("error:") and "in the future" in line and "--dry-run" in line
    assert not (tmp_path / "t").exists()  # no sweep report: nothing ran
