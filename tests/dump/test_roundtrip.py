"""Export -> import round trips through the embedded engine (SurrealDB 3.2.4, `mem://`).

A record survives when the restored database prints exactly the same `<string> $this` text
for it: that text is the full SurrealQL literal, so it shows every type (int vs float vs
decimal, NULL vs absent, bytes, durations, nanoseconds...) and every record id exactly.
"""

from __future__ import annotations

import io
import json
import math
import re
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectron_backup.content_hash import table_hash
from spectron_backup.dump.export import export_database
from spectron_backup.dump.importer import import_dump
from spectron_backup.dump.reader import open_dump
from spectron_backup.errors import UsageError

NS = "test"
DB = "test"

# -- SurrealQL literal text ------------------------------------------------------------------


def sq(text: str) -> str:
    """A single-quoted SurrealQL string; other characters (newline, CR, tab, NUL...) stay raw."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dq(text: str) -> str:
    """A double-quoted SurrealQL string (also the form of odd object keys)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bq(text: str) -> str:
    """A backtick-quoted identifier / record key."""
    return "`" + text.replace("\\", "\\\\").replace("`", "\\`") + "`"


def obj(items: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{key}: {value}" for key, value in items.items()) + " }"


def arr(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


TRICKY = [
    "", "'", '"', "\\", "\\'", "\n", "\r", "\t", "\r\n", ";", "--", "/*", "*/", "//", "#",
    "⟨", "⟩", "`", "{", "}", "[", "]", "é", "表", "😀", "\x00", "\x01", "\u2028",
    "NONE", "t:1", "1.5", "d'x'", " ",
]  # fmt: skip
texts = st.one_of(
    st.lists(st.sampled_from(TRICKY), max_size=5).map("".join),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
)
non_empty_texts = texts.filter(bool)


def float_literal(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "math::inf" if x > 0 else "-math::inf"
    if x == 0 and math.copysign(1.0, x) < 0:
        return "-0f"
    return repr(x) + "f"


SPECIAL_FLOATS = [
    0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308,
    1.7976931348623157e308, 0.1, 0.30000000000000004, 1e300, -1e-310,
]  # fmt: skip
floats = st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats()).map(float_literal)
ints = st.one_of(
    st.sampled_from([0, -1, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1)
).map(str)


@st.composite
def datetimes(draw: st.DrawFn) -> str:
    dt = draw(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))
    )
    nanos = draw(st.one_of(st.just(0), st.just(123456789), st.integers(0, 999_999_999)))
    base = f"{dt.year:04d}-{dt:%m-%dT%H:%M:%S}"
    return f"d'{base}.{nanos:09d}Z'" if nanos else f"d'{base}Z'"


DURATION_UNITS = ["w", "d", "h", "m", "s", "ms", "µs", "ns"]


@st.composite
def durations(draw: st.DrawFn) -> str:
    amounts = draw(st.lists(st.integers(0, 999), min_size=8, max_size=8))
    text = "".join(f"{n}{unit}" for n, unit in zip(amounts, DURATION_UNITS, strict=True) if n)
    return text or "0ns"


@st.composite
def decimals(draw: st.DrawFn) -> str:
    # rust_decimal holds at most 28-29 significant digits: longer literals do not parse.
    digits = draw(st.text("0123456789", min_size=1, max_size=28))
    point = draw(st.integers(0, len(digits)))
    sign = draw(st.sampled_from(["", "-"]))
    whole, fraction = digits[:point] or "0", digits[point:]
    return f"{sign}{whole}{'.' + fraction if fraction else ''}dec"


decimal_literals = st.one_of(
    st.sampled_from(
        [
            "1.10000000000000000001dec",
            "0dec",
            "-0.0dec",
            "1.5dec",
            "79228162514264337593543950335dec",
        ]
    ),
    decimals(),
)
uuids = st.uuids().map(lambda u: f"u'{u}'")
byte_literals = st.binary(max_size=16).flatmap(
    lambda b: st.sampled_from([f'b"{b.hex()}"', f'b"{b.hex().upper()}"', f"<bytes>{sq(b.hex())}"])
)
points = st.tuples(
    st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False)
).map(lambda p: f"({p[0]!r}, {p[1]!r})")
strings = texts.map(sq) | texts.map(dq)
links = st.sampled_from(
    [
        "link:1",
        "link:`a b`",
        "`my-table`:[1, 'x']",
        "⟨odd table⟩:u'0190b7a0-0000-7000-8000-000000000000'",
    ]
)

scalars = st.one_of(
    st.sampled_from(["NULL", "NONE", "true", "false"]),
    ints, floats, decimal_literals, datetimes(), durations(), uuids, byte_literals, points,
    strings, links,
)  # fmt: skip

ODD_KEYS = [
    "key with space", 'a"b', "it's", "w`k", "0num", "1e3", "ü", "k⟩", "⟨k", "in", "out",
    "select", "none", "id", "", "a.b", "a-b", "😀",
]  # fmt: skip
keys = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), st.sampled_from(ODD_KEYS), texts
).map(dq)
# Engine bug (3.2.4): a record id holding an object with an empty key (`t:{ "": 1 }`) is
# stored but can never be read back ("Failed to decode record key"), so ids avoid that key.
id_keys = keys.filter(lambda k: k != '""')


def objects(
    children: st.SearchStrategy[str], key_strategy: st.SearchStrategy[str] = keys
) -> st.SearchStrategy[str]:
    return st.dictionaries(key_strategy, children, max_size=4).map(obj)


values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4).map(arr) | objects(children),
    max_leaves=12,
)

id_scalars = st.one_of(
    ints, uuids, datetimes(), strings, st.sampled_from(["NULL", "true", "1.5f", "2dec", "1d"])
)
id_values = st.recursive(
    id_scalars,
    lambda children: st.lists(children, max_size=3).map(arr) | objects(children, id_keys),
    max_leaves=5,
)

# (as written in SurrealQL, its name for type::record)
TABLES = [
    ("t", "t"),
    ("`my-table`", "my-table"),
    ("⟨odd table⟩", "odd table"),
    ("`from`", "from"),
    ("`表`", "表"),
    ("`new\nline -- table`", "new\nline -- table"),
]


@st.composite
def record_ids(draw: st.DrawFn) -> str:
    table, name = draw(st.sampled_from(TABLES))
    kind = draw(
        st.sampled_from(
            ["int", "backtick", "angle", "function", "uuid", "array", "object", "plain"]
        )
    )
    if kind == "int":
        return f"{table}:{draw(ints)}"
    if kind == "backtick":
        return f"{table}:{bq(draw(non_empty_texts))}"
    if kind == "angle":  # ⟨..⟩ has no escape for ⟩ in 3.x
        key = draw(non_empty_texts.filter(lambda s: "⟩" not in s and "\\" not in s))
        return f"{table}:⟨{key}⟩"
    if kind == "function":
        return f"type::record({sq(name)}, {sq(draw(non_empty_texts))})"
    if kind == "uuid":
        return f"{table}:{draw(uuids)}"
    if kind == "array":
        return f"{table}:{arr(draw(st.lists(id_values, max_size=3)))}"
    if kind == "object":
        return f"{table}:{obj(draw(st.dictionaries(id_keys, id_values, max_size=3)))}"
    return f"{table}:{draw(st.from_regex(r'[a-z][a-z0-9_]{0,5}', fullmatch=True))}"


record_fields = st.dictionaries(keys.filter(lambda k: k != '"id"'), values, max_size=6)
record_sets = st.lists(st.tuples(record_ids(), record_fields), max_size=12)


def assert_summaries_match(rt, restored: dict[str, list[str]]) -> None:
    assert rt.imported.ok, rt.imported.failures
    assert set(rt.exported.tables) == set(restored)
    for table, texts in restored.items():
        assert rt.exported.tables[table].count == len(texts), table
        assert rt.exported.tables[table].hash == table_hash(texts), table


# -- the property ----------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(records=record_sets, batch_size=st.sampled_from([1, 2, 3, 1000]))
def test_any_records_round_trip(records, batch_size, records_of, roundtrip, new_mem_db) -> None:
    """Records of every type and every kind of id come back text-identical.

    Small export batch sizes make the exporter page by id range (`tb:key>..`) across ids of
    mixed kinds (ints, strings, uuids, arrays, objects), which sort in that order.
    """
    with new_mem_db() as original:
        for record_id, fields in records:
            # UPSERT: two generated ids may be the same record.
            original.run(f"UPSERT {record_id} CONTENT {obj(fields)}")
        before = records_of(original)
        rt = roundtrip(original, NS, DB, batch_size=batch_size)
        with rt.conn:
            after = records_of(rt.conn)
        assert after == before
        assert_summaries_match(rt, after)


# -- a rich schema ---------------------------------------------------------------------------

RICH_SETUP = r"""
DEFINE ANALYZER simple TOKENIZERS blank,class FILTERS lowercase,ascii,snowball(english);
DEFINE FUNCTION fn::classify($n: int) -> string {
    LET $label = IF $n > 10 { 'big;{}' } ELSE { '}small{' };
    RETURN string::concat($label, ';');
} COMMENT 'has ; and {nested {braces}}';
DEFINE PARAM $threshold VALUE { limit: 10, note: 'a;b}' };
DEFINE TABLE person SCHEMAFULL;
DEFINE FIELD name ON person TYPE string;
DEFINE FIELD email ON person TYPE option<string>;
DEFINE FIELD emb ON person TYPE array<float>;
DEFINE FIELD bio ON person TYPE option<string>;
DEFINE FIELD created ON person TYPE datetime DEFAULT d'2024-01-01T00:00:00Z' READONLY;
DEFINE INDEX email_unique ON person FIELDS email UNIQUE;
DEFINE INDEX bio_ft ON person FIELDS bio FULLTEXT ANALYZER simple BM25 HIGHLIGHTS;
DEFINE INDEX emb_hnsw ON person FIELDS emb HNSW DIMENSION 4 DIST COSINE;
DEFINE TABLE log SCHEMALESS;
DEFINE EVENT person_created ON person WHEN $event = 'CREATE' THEN {
    CREATE log SET msg = string::concat('created ', <string> $after.id);
};
DEFINE TABLE aknows TYPE RELATION IN person OUT person ENFORCED;
DEFINE TABLE mixed TYPE ANY SCHEMALESS;
DEFINE TABLE person_count AS SELECT count() AS n FROM person GROUP ALL;
DEFINE TABLE a_by_name AS SELECT count() AS n, name FROM person GROUP BY name;
DEFINE TABLE a_names AS SELECT count() AS groups FROM a_by_name GROUP ALL;
CREATE person:alice CONTENT { name: 'Alice', email: 'alice@example.com', emb: [1.0, 0.0, 0.0, 0.0], bio: 'Alice writes databases' };
CREATE person:bob CONTENT { name: 'Bob', email: 'bob@example.com', emb: [0.0, 1.0, 0.0, 0.0], bio: 'Bob tests backups' };
CREATE person:carol CONTENT { name: 'Carol', emb: [0.5, 0.5, 0.0, 0.0] };
RELATE person:alice->aknows:e1->person:bob SET since = 2020;
RELATE person:bob->aknows:e2->person:carol SET since = 2021;
RELATE person:alice->mixed:edge1->person:carol SET kind = 'edge';
CREATE mixed:plain1 SET in = person:alice, out = person:bob, kind = 'not an edge';
CREATE mixed:plain2 SET note = 'no in/out';
"""


def run_setup(conn, setup: str) -> None:
    for result in conn.query(setup):
        assert result["status"] == "OK", result


def test_rich_schema_round_trip(mem_db, records_of, schema_of, roundtrip) -> None:
    original = mem_db()
    run_setup(original, RICH_SETUP)
    # The views `a_by_name` and `a_names` (a view of a view) sort before their sources.
    rt = roundtrip(original, NS, DB)
    with rt.conn as restored:
        after = records_of(restored)
        assert after == records_of(original)
        assert_summaries_match(rt, after)
        info, tables = schema_of(restored)
        assert (info, tables) == schema_of(original)
        assert set(info["tables"]) == {
            "a_by_name",
            "a_names",
            "aknows",
            "log",
            "mixed",
            "person",
            "person_count",
        }
        # the automatic fields (`emb.*`, a relation's `in`/`out`) replayed with OVERWRITE
        assert {"emb", "emb.*"} <= set(tables["person"]["fields"])
        assert set(tables["aknows"]["fields"]) == {"in", "out"}
        assert "DEFINE FIELD OVERWRITE emb.* ON person" in rt.dump
        assert "HNSW DIMENSION 4 DIST COSINE" in tables["person"]["indexes"]["emb_hnsw"]
        assert "FULLTEXT ANALYZER simple BM25" in tables["person"]["indexes"]["bio_ft"]
        # the dump's order: relations after the others, views after the tables they read
        order = re.findall(r"^-- TABLE: (.+)$", rt.dump, re.M)
        assert order.index("aknows") > order.index("person")
        assert order.index("person") < order.index("a_by_name") < order.index("a_names")
        assert set(order[-3:]) == {"a_by_name", "a_names", "person_count"}
        assert "id: person_count:" not in rt.dump and "id: a_by_name:" not in rt.dump
        # events did not fire again on import (OPTION IMPORT): still three log lines
        assert len(after["log"]) == 3

        # the graph works: the ENFORCED relation's edges (its name sorts before `person`)
        assert restored.run_one("SELECT VALUE ->aknows->person FROM ONLY person:alice") == [
            restored.run_one("RETURN person:bob")
        ]
        assert restored.run_one("SELECT VALUE <-aknows<-person FROM ONLY person:carol") == [
            restored.run_one("RETURN person:bob")
        ]
        assert restored.run_one("SELECT VALUE ->mixed->person FROM ONLY person:alice") == [
            restored.run_one("RETURN person:carol")
        ]
        # ...and a plain record with in/out fields in the same TYPE ANY table is no edge
        assert restored.run_one(
            "RETURN [record::is_edge(mixed:edge1), record::is_edge(mixed:plain1)]"
        ) == [
            True,
            False,
        ]
        assert restored.run_one("RETURN record::is_edge(aknows:e1)") is True

        # functions, params, indexes and views work in the restored database
        assert restored.run_one("RETURN fn::classify(20)") == "big;{};"
        assert restored.run_one("RETURN $threshold") == {"limit": 10, "note": "a;b}"}
        bob = restored.run_one("RETURN person:bob")
        assert restored.run_one("SELECT VALUE id FROM person WHERE bio @@ 'backups'") == [bob]
        assert restored.run_one(
            "SELECT VALUE id FROM person WHERE emb <|1,40|> [0.0, 1.0, 0.0, 0.0]"
        ) == [bob]
        failed = restored.query(
            "CREATE person:dave CONTENT { name: 'Dave', email: 'alice@example.com', emb: [] }"
        )
        assert failed[0]["status"] == "ERR" and "email_unique" in str(failed[0]["result"])
        run_setup(
            restored, "CREATE person:erin CONTENT { name: 'Erin', emb: [0.0, 0.0, 0.0, 1.0] }"
        )
        assert restored.run_one("SELECT VALUE n FROM person_count") == [4]
        assert restored.run_one("SELECT VALUE groups FROM a_names") == [4]
        assert len(restored.run_one("SELECT * FROM log")) == 4  # the event fires again


# -- the dump's text -------------------------------------------------------------------------


def export_text(conn, **kwargs) -> tuple[str, object]:
    out = io.BytesIO()
    summary = export_database(conn, NS, DB, out, **kwargs)
    return out.getvalue().decode("utf-8"), summary


def test_dump_starts_with_comments_then_option_import(mem_db) -> None:
    conn = mem_db()
    run_setup(conn, "CREATE t:1")
    dump, _ = export_text(conn)
    lines = dump.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("--"))
    assert first > 0 and lines[0].startswith("--")
    assert all(line.startswith("--") or not line.strip() for line in lines[:first])
    assert lines[first] == "OPTION IMPORT;"


def test_insert_lines_hold_at_most_1000_records(mem_db, records_of, roundtrip) -> None:
    conn = mem_db()
    run_setup(conn, "FOR $i IN 1..=2500 { CREATE type::record('t', $i) SET n = $i };")
    run_setup(conn, "FOR $i IN 1..=3 { RELATE t:1->e->t:2 SET n = $i };")
    dump, summary = export_text(conn)
    inserts = [line for line in dump.splitlines() if line.startswith("INSERT [")]
    assert [line.count("{ id: t:") for line in inserts] == [1000, 1000, 500]
    assert all(line.endswith(" ];") for line in inserts)
    relations = [line for line in dump.splitlines() if line.startswith("INSERT RELATION [")]
    assert len(relations) == 1 and relations[0].count("id: e:") == 3
    assert "id: e:" not in "".join(inserts)
    assert summary.tables["t"].count == 2500 and summary.tables["e"].count == 3

    rt = roundtrip(conn, NS, DB)
    with rt.conn as restored:
        assert records_of(restored) == records_of(conn)
        assert restored.run_one("SELECT VALUE count(->e) FROM ONLY t:1") == 3


def test_redacted_secrets_are_warned_about_and_never_written(mem_db, schema_of, roundtrip) -> None:
    conn = mem_db()
    run_setup(
        conn,
        """
        DEFINE ACCESS acc ON DATABASE TYPE JWT ALGORITHM HS512 KEY 'secret';
        DEFINE ACCESS acc2 ON DATABASE TYPE JWT ALGORITHM HS512 KEY 'xK9-signing-key-value';
        DEFINE USER bob ON DATABASE PASSWORD 'hunter2-password' ROLES VIEWER;
        CREATE t:1;
        """,
    )
    rt = roundtrip(conn, NS, DB)
    with rt.conn:
        for name, what in (("acc", "access method"), ("acc2", "access method"), ("bob", "user")):
            assert any(f"{what} {name!r}" in w for w in rt.exported.warnings), rt.exported.warnings
            assert re.search(rf"^-- WARNING: .*{what} {name!r}", rt.dump, re.M)
        # (the warning text itself says "the secret of", so look for the key as written)
        assert "'secret'" not in rt.dump and "KEY 'secret" not in rt.dump
        assert "xK9-signing-key-value" not in rt.dump
        assert "hunter2-password" not in rt.dump
        assert "$argon2" not in rt.dump  # 3.2.4 redacts the password hash too
        assert rt.imported.ok
        # what comes back is the redacted definition, exactly as INFO showed it
        assert schema_of(rt.conn) == schema_of(conn)


@pytest.mark.parametrize("ns", [NS, "ns\nDELETE person;\n--"])
def test_names_with_line_breaks_cannot_inject_statements(
    mem_db, records_of, roundtrip, ns: str
) -> None:
    """Table and namespace names appear in `--` comment headers: a raw line break there would
    end the comment and run the rest of the name as SurrealQL on import."""
    conn = mem_db(ns, DB)
    names = [
        "x\nDELETE person;\n-- ",
        "y\rDELETE person;\r",
        "z\u2028DELETE person;",
        "v\nDELETE person;",
    ]
    for name in names[:3]:
        conn.run("CREATE type::record($tb, 1) SET a = 1", {"tb": name})
    run_setup(
        conn,
        "CREATE person:1; DEFINE TABLE `v\nDELETE person;` AS SELECT count() AS n FROM person GROUP ALL;",
    )
    rt = roundtrip(conn, ns, DB)
    with rt.conn as restored:
        after = records_of(restored)
        assert after == records_of(conn)
        assert after["person"] == ["{ id: person:1 }"]
        assert set(after) == {"person", *names}
        assert_summaries_match(rt, after)
    # (a raw U+2028 stays inside the engine's backtick-quoted names, where it is harmless)
    assert not re.search(r"^DELETE", rt.dump.replace("\r", "\n"), re.M)


# -- keyword table names ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["select", "none", "true"])
def test_keyword_table_names_are_refused_by_name(mem_db, name: str) -> None:
    """SurrealDB prints `select:1` unescaped and cannot parse it back: refuse, naming it."""
    conn = mem_db()
    conn.run("CREATE type::record($tb, 1) SET a = 1; CREATE t:1", {"tb": name})
    with pytest.raises(
        UsageError, match=rf"table {name!r} has a name SurrealDB prints unescaped"
    ) as err:
        export_text(conn)
    assert f"({name}:0)" in str(err.value)


@pytest.mark.parametrize("name", ["from", "value", "type", "table", "order", "in", "count"])
def test_keyword_like_table_names_that_parse_round_trip(
    mem_db, records_of, roundtrip, name: str
) -> None:
    conn = mem_db()
    conn.run(
        "CREATE type::record($tb, 1) SET a = 1; CREATE type::record($tb, 'x y') SET b = type::record($tb, 1)",
        {"tb": name},
    )
    rt = roundtrip(conn, NS, DB)
    with rt.conn as restored:
        after = records_of(restored)
        assert after == records_of(conn) and len(after[name]) == 2
        assert_summaries_match(rt, after)


def test_link_to_keyword_table_fails_loudly_not_silently(mem_db, records_of, roundtrip) -> None:
    """A link to a keyword-named table that does not exist cannot be caught at export time
    (only existing tables are checked); the restore must then fail loudly, naming the line."""
    conn = mem_db()
    run_setup(conn, "CREATE t:1 SET l = type::record('select', 1); CREATE t:2")
    rt = roundtrip(conn, NS, DB)
    with rt.conn:
        assert not rt.imported.ok
        [failure] = rt.imported.failures
        assert "select:1" in failure.statement and "Parse error" in failure.message
        assert rt.dump.splitlines()[failure.line - 1].startswith(
            "INSERT [ { id: t:1, l: select:1 }"
        )


# -- dumps written by SurrealDB 2.x: raw control characters inside strings ------------------

V2_DUMP = (
    "-- ------------------------------\n-- OPTION\n-- ------------------------------\n\n"
    "OPTION IMPORT;\n\n"
    "-- ------------------------------\n-- TABLE: t\n-- ------------------------------\n\n"
    "DEFINE TABLE t TYPE ANY SCHEMALESS PERMISSIONS NONE;\n\n"
    "-- ------------------------------\n-- TABLE DATA: t\n-- ------------------------------\n\n"
    "INSERT [ { id: t:1, s: 'line1\nline2' }, { id: t:2, s: 'cr\rhere', u: 'tab\there' }, "
    "{ id: t:3, s: 'crlf\r\nend; -- not a comment /* nor this', k: { \"a\nb\": 'x' } } ];\n"
    "INSERT [ { id: t:⟨multi\nline id⟩, b: encoding::base64::decode('aGVsbG8='), f: 1.5f } ];\n"
    "INSERT [ { id: t:4, after: 'the line counter survived' } ];\n"
)


@pytest.mark.parametrize("via", ["file", "stringio"])
def test_v2_dump_with_raw_newlines_in_strings(mem_db, records_of, tmp_path: Path, via: str) -> None:
    conn = mem_db()
    if via == "file":
        path = tmp_path / "v2.surql"
        path.write_bytes(V2_DUMP.encode())
        with open_dump(path) as fp:
            summary = import_dump(conn, NS, DB, fp)
    else:
        summary = import_dump(conn, NS, DB, io.StringIO(V2_DUMP, newline=""))
    assert summary.ok, summary.failures
    assert summary.statements == 4  # DEFINE TABLE and three INSERTs
    values = {
        key: conn.run_one(f"SELECT VALUE {field} FROM ONLY {key}")
        for key, field in (("t:1", "s"), ("t:2", "s"), ("t:3", "s"))
    }
    assert values == {
        "t:1": "line1\nline2",
        "t:2": "cr\rhere",
        "t:3": "crlf\r\nend; -- not a comment /* nor this",
    }
    assert conn.run_one("SELECT VALUE u FROM ONLY t:2") == "tab\there"
    assert conn.run_one("SELECT VALUE k FROM ONLY t:3") == {"a\nb": "x"}
    assert conn.run_one("SELECT VALUE b FROM ONLY type::record('t', 'multi\nline id')") == b"hello"
    assert records_of(conn)["t"] == sorted(
        [
            "{ id: t:1, s: 'line1\\nline2' }",
            "{ id: t:2, s: 'cr\\rhere', u: 'tab\\there' }",
            "{ id: t:3, k: { \"a\\nb\": 'x' }, s: 'crlf\\r\\nend; -- not a comment /* nor this' }",
            '{ b: b"68656C6C6F", f: 1.5f, id: t:`multi\\nline id` }',
            "{ after: 'the line counter survived', id: t:4 }",
        ]
    )


def test_v2_dump_failure_line_numbers_count_raw_newlines(mem_db) -> None:
    conn = mem_db()
    dump = V2_DUMP + "INSERT [ { id: t:4, again: true } ];\n"
    summary = import_dump(conn, NS, DB, io.StringIO(dump, newline=""))
    [failure] = summary.failures
    assert failure.line == dump.count("\n")  # the last line, raw newlines counted
    assert "already exists" in failure.message


# -- the dumps written by SurrealDB 3.0.2's own exporter -------------------------------------

EXPECTED = json.loads(
    (
        Path(__file__).resolve().parent.parent
        / "fixtures"
        / "surreal-3.0.2-export"
        / "expected.json"
    ).read_text()
)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_surreal_export_fixtures_import_and_round_trip(
    mem_db, records_of, schema_of, roundtrip, fixture_dir: Path, key: str
) -> None:
    ns, db = key.split("/")
    expected = EXPECTED[key]
    want = {table: data["records"] for table, data in expected["tables"].items()}
    assert {t: d["count"] for t, d in expected["tables"].items()} == {
        t: len(r) for t, r in want.items()
    }

    conn = mem_db(ns, db)
    with open_dump(fixture_dir / f"{ns}__{db}.surql") as fp:
        summary = import_dump(conn, ns, db, fp)
    assert summary.ok, summary.failures
    assert records_of(conn) == want
    info = conn.run_one("INFO FOR DB")
    assert {section: sorted(items) for section, items in info.items()} == expected["info"]

    rt = roundtrip(conn, ns, db)
    with rt.conn as restored:
        assert records_of(restored) == want
        assert schema_of(restored) == schema_of(conn)
        assert_summaries_match(rt, want)


# -- importer behaviour ----------------------------------------------------------------------


def test_non_empty_target_is_refused_unless_forced(mem_db, records_of) -> None:
    conn = mem_db()
    run_setup(conn, "DEFINE PARAM $x VALUE 1; CREATE t:1")
    with pytest.raises(UsageError, match=r"not empty .*--force"):
        import_dump(conn, NS, DB, io.StringIO("INSERT [ { id: t:2 } ];"))
    assert records_of(conn) == {"t": ["{ id: t:1 }"]}
    summary = import_dump(conn, NS, DB, io.StringIO("INSERT [ { id: t:2 } ];"), force=True)
    assert summary.ok and summary.statements == 1
    assert records_of(conn) == {"t": ["{ id: t:1 }", "{ id: t:2 }"]}


IMPORTER_DUMP = """OPTION IMPORT;
DEFINE TABLE t SCHEMALESS;
INSERT [ { id: t:1, a: 1 } ];
INSERT [ { id: t:1, a: 2 } ];
INSERT [ { id: t:2, a: 3 } ];
INSERT [ { id: t:9, a: } ];
INSERT [ { id: t:3, s: 'x;
y' } ];
INSERT [ { id: t:4 } ];
"""


def test_failing_and_unparsable_statements_are_reported_and_the_rest_runs(
    mem_db, records_of
) -> None:
    conn = mem_db()
    summary = import_dump(conn, NS, DB, io.StringIO(IMPORTER_DUMP))
    assert not summary.ok
    assert [(f.line, f.statement) for f in summary.failures] == [
        (4, "INSERT [ { id: t:1, a: 2 } ]"),
        (6, "INSERT [ { id: t:9, a: } ]"),
    ]
    duplicate, unparsable = summary.failures
    assert "already exists" in duplicate.message and "t:1" in duplicate.message
    assert "Parse error" in unparsable.message
    assert summary.statements == 7  # OPTION IMPORT is not counted
    assert records_of(conn) == {
        "t": ["{ a: 1, id: t:1 }", "{ a: 3, id: t:2 }", "{ id: t:3, s: 'x;\\ny' }", "{ id: t:4 }"]
    }


# Laid out as SurrealDB 3.0.2's `surreal export` writes it: a view's records follow its
# DEFINE TABLE, but defining the view over the restored data has already filled it.
REAL_EXPORT_WITH_VIEWS = """OPTION IMPORT;
DEFINE TABLE person TYPE ANY SCHEMALESS PERMISSIONS NONE;
INSERT [ { id: person:1, name: 'a' }, { id: person:2, name: 'b' }, { id: person:3, name: 'a' } ];
DEFINE TABLE `view by name` TYPE ANY SCHEMALESS AS SELECT count() AS n, name FROM person GROUP BY name PERMISSIONS NONE;
INSERT [ { id: `view by name`:['a'], n: 2, name: 'a' }, { id: `view by name`:['b'], n: 1, name: 'b' } ];
DEFINE TABLE zcount TYPE ANY SCHEMALESS AS SELECT count() AS n FROM person GROUP ALL PERMISSIONS NONE;
INSERT [ { id: zcount:[], n: 3 } ];
INSERT [ { id: person:1, name: 'duplicate of a real table' } ];
"""


def test_view_records_written_by_surreal_export_are_not_failures(mem_db, records_of) -> None:
    conn = mem_db()
    summary = import_dump(conn, NS, DB, io.StringIO(REAL_EXPORT_WITH_VIEWS))
    # only the duplicate in the ordinary table is a failure
    assert [(f.line, "already exists" in f.message) for f in summary.failures] == [(8, True)]
    assert records_of(conn) == {
        "person": [
            "{ id: person:1, name: 'a' }",
            "{ id: person:2, name: 'b' }",
            "{ id: person:3, name: 'a' }",
        ],
        "view by name": [
            "{ id: `view by name`:['a'], n: 2, name: 'a' }",
            "{ id: `view by name`:['b'], n: 1, name: 'b' }",
        ],
        "zcount": ["{ id: zcount:[], n: 3 }"],
    }
    assert "AS SELECT" in conn.run_one("INFO FOR DB")["tables"]["zcount"]
