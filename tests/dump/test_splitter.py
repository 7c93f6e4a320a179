"""Tests for the streaming SurrealQL statement splitter."""

from __future__ import annotations

import io
import json
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectron_backup.dump.splitter import (
    SplitError,
    Statement,
    iter_statements,
    iter_statements_from_file,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "surreal-3.0.2-export"
HEADER = "-- ------------------------------\n-- {}\n-- ------------------------------\n\n"


def split(text: str) -> list[Statement]:
    return list(iter_statements([text]))


def texts(text: str) -> list[str]:
    return [s.text for s in split(text)]


def pairs(text: str) -> list[tuple[int, str]]:
    return [(s.line, s.text) for s in split(text)]


def outcome(chunks: list[str]) -> list[Statement] | tuple[int, str]:
    """The statements, or (line, message) of the SplitError."""
    try:
        return list(iter_statements(chunks))
    except SplitError as e:
        return (e.line, e.message)


# --------------------------------------------------------------------------- basics


def test_simple_statements_and_lines() -> None:
    assert pairs("SELECT 1;\nSELECT 2;\n\n  SELECT 3 ;") == [
        (1, "SELECT 1"),
        (2, "SELECT 2"),
        (4, "SELECT 3"),
    ]


def test_several_statements_on_one_line() -> None:
    assert pairs("LET $a = 1; LET $b = 2;RETURN $a + $b") == [
        (1, "LET $a = 1"),
        (1, "LET $b = 2"),
        (1, "RETURN $a + $b"),
    ]


def test_final_statement_without_semicolon() -> None:
    assert pairs("SELECT 1;\nSELECT 2\n") == [(1, "SELECT 1"), (2, "SELECT 2")]
    assert pairs("SELECT 2") == [(1, "SELECT 2")]


@pytest.mark.parametrize(
    "text",
    ["", " ", "\n\n", ";", ";;;", " ; \n ;", "-- only a comment", "/* x; */", "# a\n// b\n;"],
)
def test_nothing_to_yield(text: str) -> None:
    assert split(text) == []


def test_empty_statements_are_skipped() -> None:
    assert pairs(";;SELECT 1;;\n;  ;SELECT 2;;") == [(1, "SELECT 1"), (2, "SELECT 2")]


def test_statement_is_frozen_value() -> None:
    s = Statement("SELECT 1", 3)
    assert s == Statement("SELECT 1", 3)
    with pytest.raises(AttributeError):
        s.text = "x"  # type: ignore[misc]


def test_bom_is_not_text() -> None:
    assert pairs("\ufeff-- c\nSELECT 1;") == [(2, "SELECT 1")]


# --------------------------------------------------------------------------- `;` inside things


@pytest.mark.parametrize(
    "fragment",
    [
        "'a;b'",
        '"a;b"',
        "`a;b`",
        "⟨a;b⟩",
        "r'a;b'",
        "d'2026;01'",
        "u'a;b'",
        "s'a;b'",
        'b"a;b"',
        "-- a;b\n",
        "// a;b\n",
        "# a;b\n",
        "/* a;b */",
        "/* a;\n b; */",
        "{ a; b }",
        "( a; b )",
        "[ a; b ]",
        "{ x: [ ( 1; 2 ); { y; } ]; }",
    ],
)
def test_semicolon_inside_does_not_split(fragment: str) -> None:
    script = f"SELECT {fragment} FROM t;\nSELECT 2;"
    assert texts(script) == [f"SELECT {fragment} FROM t", "SELECT 2"]


@pytest.mark.parametrize(
    ("literal", "rest"),
    [
        (r"'it\'s; here'", ""),
        (r'"a\";b"', ""),
        (r"`a\`;b`", ""),
        (r"⟨a\⟩;b⟩", ""),
        (r"'\\'", ""),  # escaped backslash, then the closing quote
        (r"'\\\'; x'", ""),
        (r"'\n\t\u{1F600};'", ""),
        (r"'a\;b'", ""),
    ],
)
def test_backslash_escapes(literal: str, rest: str) -> None:
    assert texts(f"RETURN {literal}{rest}; RETURN 2;") == [f"RETURN {literal}{rest}", "RETURN 2"]


def test_escaped_backslash_ends_string() -> None:
    # '\\' is a complete string: the following `;` ends the statement.
    assert texts(r"RETURN '\\'; RETURN 'x'") == [r"RETURN '\\'", "RETURN 'x'"]


def test_other_quotes_and_openers_inside_strings() -> None:
    for literal in [
        '"it\'s; ok"',
        "'say \"hi;\"'",
        "'{'",
        "'}'",
        "'(['",
        "'--'",
        "'#'",
        "'/*'",
        "'*/'",
        "'//'",
        "'`'",
        "'⟨'",
        "`it's`",
        '⟨it\'s "x" `y`⟩',
        "'it''s'",  # two adjacent strings
    ]:
        assert texts(f"RETURN {literal}; RETURN 2") == [f"RETURN {literal}", "RETURN 2"], literal


def test_opening_bracket_inside_string_does_not_change_depth() -> None:
    assert texts("SELECT * FROM t WHERE a = '{'; SELECT 2") == [
        "SELECT * FROM t WHERE a = '{'",
        "SELECT 2",
    ]


def test_angle_brackets_are_not_quotes() -> None:
    script = (
        "RETURN <string> $x;\n"
        "DEFINE FIELD f ON t TYPE record<person>;\n"
        "SELECT * FROM t WHERE a<b;\n"
        "SELECT * FROM t WHERE a>b;\n"
        "SELECT * FROM 1..=5;\n"
        "SELECT * FROM t:1>..;\n"
        "SELECT ->knows->person FROM p;\n"
        "SELECT <-knows<-person FROM p;\n"
        "SELECT <->knows FROM p;"
    )
    assert len(split(script)) == 9
    assert [s.line for s in split(script)] == list(range(1, 10))


def test_lone_dash_and_slash_are_not_comments() -> None:
    script = (
        "SELECT -1;\nSELECT -0.5f;\nSELECT a-b;\nSELECT 4/2;\nSELECT a - -b;\n"
        "SELECT [0.1f,-0.5f, -1e-3];\nSELECT 8 / 2 / 2;\nSELECT -"
    )
    assert texts(script) == [
        "SELECT -1",
        "SELECT -0.5f",
        "SELECT a-b",
        "SELECT 4/2",
        "SELECT a - -b",
        "SELECT [0.1f,-0.5f, -1e-3]",
        "SELECT 8 / 2 / 2",
        "SELECT -",
    ]


def test_statement_starting_with_dash_or_slash() -> None:
    assert pairs("-1;\n/2;\n-") == [(1, "-1"), (2, "/2"), (3, "-")]


# --------------------------------------------------------------------------- nesting


def test_function_body_with_semicolons() -> None:
    script = (
        "DEFINE FUNCTION fn::x($a: int) {\n"
        "    LET $b = $a + 1;\n"
        "    IF $b > 2 { RETURN 'big;'; } ELSE { RETURN 'small'; };\n"
        "    FOR $i IN [1, 2, 3] { CREATE t SET v = $i; };\n"
        "    RETURN $b;\n"
        "} PERMISSIONS FULL;\n"
        "DEFINE EVENT e ON t WHEN $event = 'UPDATE' THEN { CREATE log SET q = 'x'; };\n"
        "SELECT 1;"
    )
    result = split(script)
    assert [s.line for s in result] == [1, 7, 8]
    assert (
        result[0].text == script[: script.index("} PERMISSIONS FULL") + len("} PERMISSIONS FULL")]
    )
    assert result[1].text.endswith("CREATE log SET q = 'x'; }")


def test_unbalanced_closing_bracket_is_ignored() -> None:
    assert texts("SELECT 1); SELECT ]2; SELECT }3;") == ["SELECT 1)", "SELECT ]2", "SELECT }3"]


def test_open_bracket_at_eof_is_the_final_statement() -> None:
    assert pairs("SELECT 1;\nSELECT { a; b;\n") == [(1, "SELECT 1"), (2, "SELECT { a; b;")]


# --------------------------------------------------------------------------- comments


def test_comments_between_statements_are_not_text() -> None:
    script = (
        "-- lead\n# hash\n// slashes\n/* block\n; */\nSELECT 1;\n"
        "-- between ; \n/* also; */ SELECT 2; # trailing\n"
    )
    assert pairs(script) == [(6, "SELECT 1"), (8, "SELECT 2")]


def test_comments_inside_statement_are_kept() -> None:
    script = "SELECT a, -- first;\n  b /* two; */ FROM t # three;\n WHERE x;"
    assert texts(script) == [script[:-1]]


def test_trailing_comments_of_a_statement_are_dropped() -> None:
    # So that an importer may safely append ";" to the text.
    assert texts("SELECT 1 -- one\n;SELECT 2 /* two */ ; SELECT 3 # three") == [
        "SELECT 1",
        "SELECT 2",
        "SELECT 3",
    ]
    assert texts("SELECT 1 -- a\n -- b\n /* c */\n") == ["SELECT 1"]
    assert texts("SELECT 1 /* a */ + 2 -- b\n") == ["SELECT 1 /* a */ + 2"]


def test_comment_markers_are_not_nested() -> None:
    assert texts("/* a /* b */ SELECT 1; /* */ */") == ["SELECT 1", "*/"]
    assert texts("SELECT 1 /*/ x; */; SELECT 2") == ["SELECT 1", "SELECT 2"]


def test_unterminated_line_comment_at_eof_is_fine() -> None:
    assert texts("SELECT 1;\n-- the end") == ["SELECT 1"]
    assert texts("SELECT 1; // x") == ["SELECT 1"]


def test_export_headers() -> None:
    script = (
        HEADER.format("OPTION")
        + "OPTION IMPORT;\n\n"
        + HEADER.format("FUNCTIONS")
        + "DEFINE FUNCTION fn::greet($name: string) { RETURN 'Hello; ' + $name + '!' }"
        + " COMMENT 'multi-line;\\nbody' PERMISSIONS FULL;\n\n"
        + HEADER.format("TABLE: t")
        + "DEFINE TABLE t TYPE NORMAL SCHEMAFULL PERMISSIONS NONE;\n\n\n\n"
        + HEADER.format("TABLE DATA: t")
        + "INSERT [ { id: t:1, v: -0.5f } ];\n\n"
    )
    assert pairs(script) == [
        (5, "OPTION IMPORT"),
        (11, script.splitlines()[10][:-1]),
        (17, "DEFINE TABLE t TYPE NORMAL SCHEMAFULL PERMISSIONS NONE"),
        (25, "INSERT [ { id: t:1, v: -0.5f } ]"),
    ]


# --------------------------------------------------------------------------- lines


def test_raw_newlines_in_strings_and_identifiers_count_lines() -> None:
    script = (
        "CREATE t SET a = 'one\ntwo;\nthree';\n"  # lines 1-3
        'CREATE t SET b = "x\n\ny";\n'  # lines 4-6
        "CREATE `we\nird` SET c = ⟨a\nb⟩;\n"  # lines 7-9
        "/* c\nc */ SELECT 4;\n"  # lines 10-11
        "SELECT\n5;"  # lines 12-13
    )
    assert [s.line for s in split(script)] == [1, 4, 7, 11, 12]
    assert split(script)[0].text == "CREATE t SET a = 'one\ntwo;\nthree'"


def test_crlf_line_endings() -> None:
    script = "-- c\r\nSELECT 1;\r\n\r\nSELECT 'a\r\nb';\r\nSELECT\r\n3\r\n"
    assert pairs(script) == [(2, "SELECT 1"), (4, "SELECT 'a\r\nb'"), (6, "SELECT\r\n3")]


def test_carriage_return_alone_is_not_a_line_break() -> None:
    assert pairs("SELECT 1;\rSELECT 2;\nSELECT 3;") == [
        (1, "SELECT 1"),
        (1, "SELECT 2"),
        (2, "SELECT 3"),
    ]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("script", "line", "message"),
    [
        ("SELECT 1;\nSELECT 'abc;\n\nSELECT 3;", 2, "unterminated string starting at line 2"),
        ('SELECT 1;\n\nSELECT "abc', 3, "unterminated string starting at line 3"),
        ("SELECT 'ab\\'", 1, "unterminated string starting at line 1"),
        ("SELECT 'ab\\", 1, "unterminated string starting at line 1"),
        ("x;\nSELECT `weird", 2, "unterminated backtick identifier starting at line 2"),
        ("x;\nSELECT ⟨weird\\⟩", 2, "unterminated ⟨⟩ identifier starting at line 2"),
        ("SELECT 1;\n/* open\n;\n", 2, "unterminated block comment starting at line 2"),
        ("SELECT 1 /* open *", 1, "unterminated block comment starting at line 1"),
        ("SELECT 1\n\n\n /*/", 4, "unterminated block comment starting at line 4"),
    ],
)
def test_unterminated_constructs(script: str, line: int, message: str) -> None:
    with pytest.raises(SplitError) as info:
        split(script)
    assert info.value.line == line
    assert info.value.message == message
    assert str(info.value) == f"line {line}: {message}"
    # The same error whatever the chunking.
    assert outcome(list(script)) == (line, message)


def test_statements_before_the_error_are_yielded() -> None:
    it = iter_statements(["SELECT 1;\nSELECT 'open"])
    assert next(it) == Statement("SELECT 1", 1)
    with pytest.raises(SplitError):
        next(it)


def test_split_error_is_a_value_error_and_pickles() -> None:
    err = SplitError(7, "unterminated string starting at line 7")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.line, copy.message, str(copy)) == (err.line, err.message, str(err))


# --------------------------------------------------------------------------- chunking

TRICKY = (
    "\ufeff-- header; 'x\r\n"
    "OPTION IMPORT;\n"
    "# hash; `x\n"
    '// slashes; "x\n'
    "/* block; ⟨x\n*/\n"
    "DEFINE FUNCTION fn::f($a: int) { LET $b = -$a; RETURN $b / 2; } COMMENT 'a\\'b;\\\\';\n"
    'INSERT [ { id: t:`a\\`b`, v: [-0.5f, 1-2, 4/2], s: "q\\";--", w: ⟨x\\⟩;y⟩ } ];;\n'
    "SELECT a --c;\n, b/*;*/FROM t#;\n;\r\n"
    "CREATE t SET x = 'multi\nline;' ; -\n"
    "SELECT ->e<-f FROM [1, 2]\n/**/-- tail"
)


def test_tricky_script_reference() -> None:
    assert pairs(TRICKY) == [
        (2, "OPTION IMPORT"),
        (7, TRICKY.splitlines()[6][:-1]),
        (8, TRICKY.splitlines()[7][:-2]),
        (9, "SELECT a --c;\n, b/*;*/FROM t"),
        (12, "CREATE t SET x = 'multi\nline;'"),
        (13, "-\nSELECT ->e<-f FROM [1, 2]"),
    ]


def test_chunk_boundary_at_every_position() -> None:
    expected = split(TRICKY)
    for k in range(len(TRICKY) + 1):
        assert list(iter_statements([TRICKY[:k], TRICKY[k:]])) == expected, k


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_fixed_chunk_sizes(size: int) -> None:
    chunks = [TRICKY[i : i + size] for i in range(0, len(TRICKY), size)]
    assert list(iter_statements(chunks)) == split(TRICKY)


def test_two_chunk_boundaries_at_every_pair_of_positions() -> None:
    script = "a'\\'';-- x;\n/*;*/b`;`{;}-/c⟨\\⟩⟩\r\n#;\n;d"
    expected = split(script)
    assert [s.text for s in expected] == ["a'\\''", "b`;`{;}-/c⟨\\⟩⟩", "d"]
    n = len(script)
    for i in range(n + 1):
        for j in range(i, n + 1):
            chunks = [script[:i], "", script[i:j], script[j:]]
            assert list(iter_statements(chunks)) == expected, (i, j)


def test_from_file_uses_chunk_size() -> None:
    for size in (1, 4, 1 << 20):
        assert list(iter_statements_from_file(io.StringIO(TRICKY), chunk_size=size)) == split(
            TRICKY
        )


def test_is_lazy_and_streams() -> None:
    """Statements come out while the input is still being read, not after it."""
    consumed = 0

    def endless() -> Iterator[str]:
        nonlocal consumed
        while True:
            consumed += 1
            yield "INSERT [ { v: [-0.1f, 0.2f], s: 'a;b' } ];\n"

    it = iter_statements(endless())
    first = [next(it) for _ in range(1000)]
    assert first[999] == Statement("INSERT [ { v: [-0.1f, 0.2f], s: 'a;b' } ]", 1000)
    assert consumed <= 1001


def test_long_statement_across_many_chunks() -> None:
    record = "{ embedding: [" + ", ".join(["0.12345678f", "-0.5f"] * 192) + "], id: t:1 }"
    insert = "INSERT [ " + ", ".join([record] * 200) + " ]"
    script = f"-- x\n{insert};\n{insert}\n"
    chunks = [script[i : i + 4093] for i in range(0, len(script), 4093)]
    assert pairs(script) == [(2, insert), (3, insert)]
    assert list(iter_statements(chunks)) == split(script)


# --------------------------------------------------------------------------- differential

FRAGMENTS = [
    "SELECT",
    "a",
    "1",
    " ",
    "\n",
    "\r\n",
    "\r",
    "\t",
    ";",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    "'",
    '"',
    "`",
    "⟨",
    "⟩",
    "\\",
    "-",
    "/",
    "*",
    "#",
    "--",
    "//",
    "/*",
    "*/",
    "é",
]
QUOTES = {"'": "'", '"': '"', "`": "`", "⟨": "⟩"}
KINDS = {"'": "string", '"': "string", "`": "backtick identifier", "⟨": "⟨⟩ identifier"}


def reference(text: str) -> list[Statement] | tuple[int, str]:
    """A slow, obviously-correct char-by-char splitter to compare against."""

    def line_at(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    out: list[Statement] = []
    start: int | None = None  # start of the current statement
    cut: int | None = None  # start of the current statement's trailing comments
    depth = 0
    i, n = 0, len(text)

    def emit(end: int, terminated: bool = True) -> None:
        assert start is not None
        body = text[start : end if cut is None else cut].rstrip()
        if body:
            out.append(Statement(body, line_at(start), terminated))

    while i < n:
        c, two = text[i], text[i : i + 2]
        if c.isspace():
            i += 1
        elif two in ("--", "//") or c == "#":
            if start is not None and cut is None:
                cut = i
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif two == "/*":
            if start is not None and cut is None:
                cut = i
            end = text.find("*/", i + 2)
            if end < 0:
                return (line_at(i), f"unterminated block comment starting at line {line_at(i)}")
            i = end + 2
        elif c == ";" and depth == 0:
            if start is not None:
                emit(i)
            start, cut = None, None
            i += 1
        else:
            if start is None:
                start = i
            cut = None
            if c in QUOTES:
                j = i + 1
                while j < n and text[j] != QUOTES[c]:
                    j += 2 if text[j] == "\\" else 1
                if j >= n:
                    msg = f"unterminated {KINDS[c]} starting at line {line_at(i)}"
                    return (line_at(i), msg)
                i = j + 1
                continue
            if c in "{([":
                depth += 1
            elif c in "})]" and depth:
                depth -= 1
            i += 1
    if start is not None:
        emit(n, terminated=False)
    return out


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    pieces=st.lists(st.sampled_from(FRAGMENTS), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_matches_reference_whatever_the_chunking(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    expected = reference(text)
    assert outcome([text]) == expected
    for k in range(len(text) + 1):
        assert outcome([text[:k], text[k:]]) == expected, k
    bounds = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    assert outcome(chunks) == expected


# --------------------------------------------------------------------------- real exports

DUMPS = sorted(FIXTURES.glob("*.surql"))


def test_fixtures_are_present() -> None:
    assert len(DUMPS) == 3
    assert (FIXTURES / "expected.json").is_file()


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_real_export_one_statement_per_statement_line(path: Path) -> None:
    with path.open(encoding="utf-8", newline="") as fp:
        lines = fp.read().split("\n")
    # In these 3.0.2 exports every statement (DEFINE FUNCTION and EVENT included) is one
    # line starting with one of these words and ending with ";".
    wanted = [
        (number, line[:-1])
        for number, line in enumerate(lines, start=1)
        if line.startswith(("INSERT", "DEFINE", "OPTION"))
    ]
    assert all(lines[number - 1].endswith(";") for number, _ in wanted)
    with path.open(encoding="utf-8", newline="") as fp:
        got = [(s.line, s.text) for s in iter_statements_from_file(fp, chunk_size=4096)]
    assert got == wanted
    assert got[0] == (5, "OPTION IMPORT")
    inserts = [t for _, t in got if t.startswith("INSERT")]
    assert len(inserts) == sum(1 for line in lines if line.startswith("INSERT"))


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_real_export_chunking_does_not_matter(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    expected = split(text)
    for size in (1, 13, 1000):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        assert list(iter_statements(chunks)) == expected, size


def test_real_exports_match_expected_json() -> None:
    expected = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    assert len(expected) == len(DUMPS)
    for db, want in expected.items():
        path = FIXTURES / (db.replace("/", "__") + ".surql")
        statements = [s.text for s in iter_statements([path.read_text(encoding="utf-8")])]
        tables = {
            m.group(1).strip("`") for t in statements if (m := re.match(r"DEFINE TABLE (\S+) ", t))
        }
        assert tables == set(want["info"]["tables"]), db
        functions = [t for t in statements if t.startswith("DEFINE FUNCTION")]
        assert len(functions) == len(want["info"]["functions"]), db
        inserts = [t for t in statements if t.startswith("INSERT")]
        for table, data in want["tables"].items():
            for record in data.get("records", []):
                # Every record sits whole inside exactly one INSERT statement.
                assert sum(record in t for t in inserts) == 1, (db, table, record)


# --------------------------------------------------------------------------- truncation


def test_a_last_statement_without_semicolon_is_marked_unterminated() -> None:
    statements = list(iter_statements(["CREATE a:1;\nINSERT [ { id: t:1 }, { id: t:2"]))
    assert [s.terminated for s in statements] == [True, False]
    assert statements[-1].line == 2


def test_a_complete_script_ends_terminated_even_with_trailing_comments() -> None:
    statements = list(iter_statements(["CREATE a:1;\n-- the end\n\n"]))
    assert [s.terminated for s in statements] == [True]
