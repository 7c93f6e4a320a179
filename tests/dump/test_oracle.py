"""Our dumps against SurrealDB's own exporter and importer (tests/oracle, engine 3.0.2 in Node).

(a) a dump written here imports with SurrealDB's importer to the same records and schema;
(b) a dump written by SurrealDB's exporter imports here to the same records and schema.

The Python side runs the embedded engine 3.2.4, the oracle 3.0.2. For everything below both
engines print `<string>` of a record identically (checked: ints, floats incl. -0, NaN,
±Infinity and subnormals, decimals, datetimes with nanoseconds, durations, uuids, bytes,
geometry, NULL, odd keys, record ids of every kind, escaped table names) and show identical
INFO FOR DB / INFO FOR TABLE text, so nothing is normalised.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from spectron_backup.dump.export import export_database
from spectron_backup.dump.importer import import_dump
from spectron_backup.dump.reader import open_dump

pytestmark = pytest.mark.oracle

NS = "oracle"
DB = "check"

# Deterministic: every record has an explicit id. `aknows` is an ENFORCED relation whose name
# sorts before its endpoint table `person`; `mixed` (TYPE ANY) holds an edge next to a plain
# record with in/out fields. `表` holds non-BMP text, which JS sorts differently (UTF-16).
SETUP = (
    r"""
DEFINE ANALYZER simple TOKENIZERS blank,class FILTERS lowercase,ascii;
DEFINE FUNCTION fn::greet($name: string) -> string { LET $x = '{;}'; RETURN string::concat('hi ', $name, $x); };
DEFINE PARAM $threshold VALUE 0.75;
DEFINE TABLE person SCHEMAFULL;
DEFINE FIELD name ON person TYPE string;
DEFINE FIELD emb ON person TYPE array<float>;
DEFINE INDEX person_name ON person FIELDS name UNIQUE;
DEFINE INDEX person_emb ON person FIELDS emb HNSW DIMENSION 4 DIST COSINE;
DEFINE TABLE aknows TYPE RELATION IN person OUT person ENFORCED;
DEFINE TABLE mixed TYPE ANY SCHEMALESS;
DEFINE TABLE doc SCHEMALESS;
DEFINE INDEX doc_ft ON doc FIELDS body FULLTEXT ANALYZER simple BM25;
CREATE person:alice CONTENT { name: 'Alice', emb: [1.0, 0.0, 0.0, 0.0] };
CREATE person:bob CONTENT { name: 'Bob', emb: [0.0, 1.0, 0.0, 0.5] };
CREATE person:⟨carol smith⟩ CONTENT { name: 'Carol', emb: [0.25, 0.25, 0.0, -1.5] };
RELATE person:alice->aknows:e1->person:bob SET since = 2020;
RELATE person:bob->aknows:e2->person:⟨carol smith⟩ SET since = 2021, w = 0.5;
RELATE person:alice->mixed:edge1->person:bob SET kind = 'edge';
CREATE mixed:plain1 SET in = person:alice, out = person:bob, kind = 'not an edge';
CREATE doc:1 SET body = 'Backups are tested; restores are drilled';
CREATE misc:1 CONTENT {
  i: 42, neg: -9223372036854775808, max: 9223372036854775807,
  f: 1.5f, third: 0.30000000000000004f, negzero: -0f, nan: NaN, inf: math::inf, ninf: -math::inf,
  tiny: 5e-324f, big: 1e300f,
  dec: 1.10000000000000000001dec, dec2: -0.5dec,
  dt: d'2024-01-02T03:04:05.123456789Z', dt2: d'1970-01-01T00:00:00Z',
  dur: 1w2d3h4m5s6ms7µs8ns,
  uid: u'0190b7a0-0000-7000-8000-000000000000',
  by: <bytes>'hello', by2: b"00ff10",
  pt: (1.5, 2.5),
  nul: NULL, gone: NONE,
  s: 'it\'s "quoted" \\ back\nline\ttab\rcr é 表 😀 ; -- /* */',
  nested: { "key with space": [1, { "a\"b": 'x', "w`k": [] }], "0num": {}, "k⟩": NULL, "ü": 'ü' },
  link: person:alice,
  arr: [1, 'two', 3.5f, [d'2024-01-01T00:00:00Z', u'0190b7a0-0000-7000-8000-000000000001']]
};
CREATE misc:[1, 'a', d'2024-01-01T00:00:00Z'] SET kind = 'array id';
CREATE misc:{ a: 1, b: 'x y' } SET kind = 'object id';
CREATE misc:-7 SET kind = 'negative id';
CREATE misc:⟨str id with space⟩ SET kind = 'string id';
CREATE misc:u'0190b7a0-0000-7000-8000-0000000000ff' SET kind = 'uuid id';
CREATE ⟨my-table⟩:1 SET v = 'dash';
CREATE ⟨odd table⟩:⟨k 1⟩ SET v = 'space';
DEFINE TABLE zcount AS SELECT count() AS n FROM person GROUP ALL;
"""
    + (
        # non-BMP (U+1D518) and fullwidth (U+FF5A) text: JS and Python sort them differently
        "CREATE ⟨表⟩:⟨键⟩ SET v = '😀 non-BMP text: \U0001d518';\n"
        "CREATE ⟨表⟩:⟨key2⟩ SET v = '\uff5a BMP fullwidth';\n"
    )
)

EDGES = [
    "{ id: aknows:e1, in: person:alice, out: person:bob, since: 2020 }",
    "{ id: aknows:e2, in: person:bob, out: person:`carol smith`, since: 2021, w: 0.5f }",
]


def oracle(oracle_dir: Path, *args: str) -> None:
    done = subprocess.run(
        ["node", "oracle.mjs", *args], cwd=oracle_dir, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"oracle {args[0]} failed:\n{done.stderr}"


def oracle_import(oracle_dir: Path, dump: Path, tmp_path: Path) -> dict:
    out = tmp_path / f"{dump.stem}.records.json"
    oracle(oracle_dir, "import", "--ns", NS, "--db", DB, "--in", str(dump), "--out", str(out))
    return json.loads(out.read_text(encoding="utf-8"))


def oracle_records(result: dict) -> dict[str, list[str]]:
    """The oracle's records per table, re-sorted by Python (JS sorts by UTF-16 code units)."""
    tables = {}
    for table, data in result["tables"].items():
        assert data["count"] == len(data["records"])
        tables[table] = sorted(data["records"])
    return tables


@pytest.fixture
def python_db(mem_db):
    conn = mem_db(NS, DB)
    for result in conn.query(SETUP):
        assert result["status"] == "OK", result
    return conn


def test_our_dump_imports_into_surreal_import(
    oracle_dir, python_db, records_of, schema_of, tmp_path
) -> None:
    dump = tmp_path / "ours.surql"
    with dump.open("wb") as out:
        summary = export_database(python_db, NS, DB, out)
    assert summary.tables["aknows"].count == 2

    result = oracle_import(oracle_dir, dump, tmp_path)
    theirs = oracle_records(result)
    ours = records_of(python_db)
    assert theirs == ours
    # relation tables come last in our dump, so SurrealDB's importer keeps the ENFORCED edges
    assert theirs["aknows"] == EDGES
    info, tables = schema_of(python_db)
    assert result["info"] == info
    assert result["table_info"] == tables


def test_surreal_export_dump_imports_here(
    oracle_dir, python_db, mem_db, records_of, schema_of, tmp_path
) -> None:
    setup = tmp_path / "setup.surql"
    setup.write_text(SETUP, encoding="utf-8")
    dump = tmp_path / "theirs.surql"
    oracle(oracle_dir, "export", "--ns", NS, "--db", DB, "--setup", str(setup), "--out", str(dump))
    text = dump.read_text(encoding="utf-8")
    # the real exporter writes `aknows` (and its edges) before `person`
    assert text.index("-- TABLE DATA: aknows") < text.index("-- TABLE DATA: person")
    assert "INSERT [ { id: zcount:[], n: 3 } ];" in text  # and the rows of views

    conn = mem_db(NS, DB)
    with open_dump(dump) as fp:
        summary = import_dump(conn, NS, DB, fp)
    assert summary.ok, summary.failures
    ours = records_of(conn)

    # SurrealDB's own view of the data: its import of its own dump...
    result = oracle_import(oracle_dir, dump, tmp_path)
    theirs = oracle_records(result)
    # ...which silently loses the ENFORCED edges written before their endpoints (known loss)
    assert theirs["aknows"] == [], "the oracle no longer loses the edges: drop this special case"
    theirs["aknows"] = EDGES
    assert ours == theirs
    # the same data built here directly, by the 3.2.4 engine
    assert ours == records_of(python_db)
    # our importer did not lose the edges: they are real graph edges again
    assert ours["aknows"] == EDGES
    assert conn.run_one("SELECT VALUE ->aknows->person FROM ONLY person:alice") == [
        conn.run_one("RETURN person:bob")
    ]
    assert conn.run_one("RETURN [record::is_edge(mixed:edge1), record::is_edge(mixed:plain1)]") == [
        True,
        False,
    ]

    info, tables = schema_of(conn)
    assert info == result["info"]
    assert tables == result["table_info"]


def test_our_dump_of_their_import_round_trips_through_the_oracle(
    oracle_dir, mem_db, records_of, tmp_path
) -> None:
    """Their dump -> our import -> our export -> their import: still the same records."""
    setup = tmp_path / "setup.surql"
    setup.write_text(SETUP, encoding="utf-8")
    theirs = tmp_path / "theirs.surql"
    oracle(
        oracle_dir, "export", "--ns", NS, "--db", DB, "--setup", str(setup), "--out", str(theirs)
    )
    conn = mem_db(NS, DB)
    with open_dump(theirs) as fp:
        assert import_dump(conn, NS, DB, fp).ok
    ours = tmp_path / "ours.surql"
    with ours.open("wb") as out:
        export_database(conn, NS, DB, out)
    assert oracle_records(oracle_import(oracle_dir, ours, tmp_path)) == records_of(conn)
