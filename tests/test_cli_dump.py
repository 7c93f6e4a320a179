"""The export and import commands as an operator uses them: files, exit statuses, messages."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import zstandard

from spectron_backup.dump.reader import ZSTD_MAGIC
from spectron_backup.surreal import connect
from tests.conftest import EXPORT_FIXTURES, run_cli

ACME = EXPORT_FIXTURES / "acme__prod.surql"


@pytest.fixture
def store(tmp_path: Path) -> str:
    """An embedded surrealkv store holding the fixture's acme/prod, imported through the CLI."""
    url = f"surrealkv://{tmp_path / 'store'}"
    result = run_cli("import", "--target", url, "--ns", "acme", "--db", "prod", str(ACME))
    assert result.returncode == 0, result.stderr
    return url


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_into(tmp_path: Path, dump: Path) -> str:
    """`import` of `dump` into a new embedded store as acme/prod, which must succeed: its URL."""
    restored = f"surrealkv://{tmp_path / 'restored'}"
    result = run_cli(
        "import", "--target", restored, "--ns", "acme", "--db", "prod", str(dump), "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["failed"] == 0
    return restored


def test_export_to_file_then_import_gives_the_same_records(store: str, tmp_path: Path) -> None:
    dump = tmp_path / "acme.surql"
    result = run_cli(
        "export", "--source", store, "--ns", "acme", "--db", "prod", "-o", str(dump), "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["snapshot"] is True
    assert summary["tables"]["attribute"]["count"] > 0
    assert dump.read_text().count("OPTION IMPORT;") == 1
    assert list(tmp_path.glob(".*tmp*")) == []

    restored = import_into(tmp_path, dump)
    with connect(store) as a:
        a.use("acme", "prod")
        original = {
            t: sorted(a.run_one("SELECT VALUE <string> $this FROM type::table($t)", {"t": t}))
            for t in summary["tables"]
        }
    with connect(restored) as b:
        b.use("acme", "prod")
        copy = {
            t: sorted(b.run_one("SELECT VALUE <string> $this FROM type::table($t)", {"t": t}))
            for t in summary["tables"]
        }
    assert copy == original


def records(url: str, tables: list[str]) -> dict[str, list[str]]:
    with connect(url) as conn:
        conn.use("acme", "prod")
        return {
            t: sorted(conn.run_one("SELECT VALUE <string> $this FROM type::table($t)", {"t": t}))
            for t in tables
        }


def test_export_to_a_zst_name_writes_zstd_that_import_restores(store: str, tmp_path: Path) -> None:
    dump = tmp_path / "acme.surql.zst"
    result = run_cli(
        "export", "--source", store, "--ns", "acme", "--db", "prod", "-o", str(dump), "--json"
    )
    assert result.returncode == 0, result.stderr
    tables = list(json.loads(result.stdout)["tables"])
    data = dump.read_bytes()
    assert data[:4] == ZSTD_MAGIC  # what `zstd -d` and the name promise
    assert zstandard.get_frame_parameters(data).has_checksum
    text = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
    assert text.decode().count("OPTION IMPORT;") == 1
    assert list(tmp_path.glob(".*tmp*")) == []

    restored = import_into(tmp_path, dump)
    assert records(restored, tables) == records(store, tables)


def test_export_to_stdout_stays_plain_text(store: str) -> None:
    result = run_cli("export", "--source", store, "--ns", "acme", "--db", "prod", "-o", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-- ") and "OPTION IMPORT;" in result.stdout


def test_export_streams_to_stdout_by_default(store: str) -> None:
    result = run_cli("export", "--source", store, "--ns", "acme", "--db", "prod")
    assert result.returncode == 0, result.stderr
    assert "OPTION IMPORT;" in result.stdout
    assert "INSERT [ {" in result.stdout
    assert "exported acme/prod" in result.stderr


def test_import_accepts_stdin(tmp_path: Path) -> None:
    result = run_cli(
        "import",
        "--target",
        f"surrealkv://{tmp_path / 's'}",
        "--ns",
        "a",
        "--db",
        "b",
        "-",
        input=ACME.read_text(),
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("foo://x", "unsupported SurrealDB URL scheme foo://"),
        ("not a url", "not a SurrealDB URL"),
        ("rocksdb:///tmp/x", "rocksdb:// is not available"),
        ("surrealkv:///nonexistent/store", "no SurrealDB store at /nonexistent/store"),
    ],
)
def test_export_bad_source_is_one_clear_line_and_exit_2(
    url: str, expected: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.surql"
    result = run_cli("export", "--source", url, "--ns", "a", "--db", "b", "-o", str(out))
    assert result.returncode == 2
    assert expected in one_error_line(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_unreachable_server_exits_2(scheme: str, tmp_path: Path) -> None:
    url = f"{scheme}://127.0.0.1:{closed_port()}"
    result = run_cli(
        "export", "--source", url, "--ns", "a", "--db", "b", "-o", str(tmp_path / "o.surql")
    )
    assert result.returncode == 2
    line = one_error_line(result)
    assert "127.0.0.1" in line
    assert list(tmp_path.iterdir()) == []


def test_password_never_printed(tmp_path: Path) -> None:
    url = f"ws://127.0.0.1:{closed_port()}"
    result = run_cli(
        "export",
        "--source",
        url,
        "--ns",
        "a",
        "--db",
        "b",
        "-u",
        "root",
        env={"SURREAL_PASS": "hunter2-very-secret"},
    )
    assert result.returncode == 2
    assert "hunter2-very-secret" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("ns", "db", "expected"),
    [
        ("nope", "prod", "namespace 'nope' does not exist"),
        ("acme", "nope", "database 'nope' does not exist"),
    ],
)
def test_missing_namespace_or_database(
    store: str, tmp_path: Path, ns: str, db: str, expected: str
) -> None:
    out = tmp_path / "out.surql"
    result = run_cli("export", "--source", store, "--ns", ns, "--db", db, "-o", str(out))
    assert result.returncode == 2
    assert expected in one_error_line(result)
    assert not out.exists()


def test_export_into_missing_directory(store: str, tmp_path: Path) -> None:
    result = run_cli(
        "export",
        "--source",
        store,
        "--ns",
        "acme",
        "--db",
        "prod",
        "-o",
        str(tmp_path / "no" / "such" / "d.surql"),
    )
    assert result.returncode == 2
    assert "does not exist" in one_error_line(result)


def test_export_that_fails_midway_leaves_no_file(tmp_path: Path) -> None:
    url = f"surrealkv://{tmp_path / 'kw'}"
    with connect(url) as conn:
        conn.use("a", "b")
        conn.run("DEFINE TABLE `select`; CREATE `select`:1 SET x = 1; CREATE ok:1")
    for name in ("out.surql", "out.surql.zst"):
        out = tmp_path / name
        result = run_cli("export", "--source", url, "--ns", "a", "--db", "b", "-o", str(out))
        assert result.returncode == 2
        assert "table 'select'" in one_error_line(result)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["kw"]


def test_json_with_stdout_dump_is_refused(store: str) -> None:
    result = run_cli("export", "--source", store, "--ns", "acme", "--db", "prod", "--json")
    assert result.returncode == 2
    assert "-o FILE" in one_error_line(result)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"", "holds no SurrealQL statements"),
    ],
)
def test_import_unreadable_file(tmp_path: Path, content: bytes | None, expected: str) -> None:
    dump = tmp_path / "d.surql"
    if content is not None:
        dump.write_bytes(content)
    target = tmp_path / "t"
    result = run_cli(
        "import", "--target", f"surrealkv://{target}", "--ns", "a", "--db", "b", str(dump)
    )
    assert result.returncode == 2
    assert expected in one_error_line(result)
    assert not target.exists()


def test_truncated_dump_is_refused_before_anything_is_imported(tmp_path: Path) -> None:
    text = ACME.read_text()
    cut = text.index("INSERT [") + 500  # inside a record, inside a string or a brace
    dump = tmp_path / "cut.surql"
    dump.write_text(text[:cut])
    target = tmp_path / "t"
    result = run_cli(
        "import", "--target", f"surrealkv://{target}", "--ns", "a", "--db", "b", str(dump)
    )
    assert result.returncode == 2
    assert "truncated" in one_error_line(result)
    assert not target.exists()


def test_failed_statements_are_listed_with_line_numbers_and_exit_1(tmp_path: Path) -> None:
    dump = tmp_path / "d.surql"
    dump.write_text(
        "OPTION IMPORT;\nDEFINE TABLE t SCHEMALESS;\nINSERT [ { id: t:1 } ];\nINSERT [ { id: t:1 } ];\nINSERT [ { id: t:2, a: } ];\nINSERT [ { id: t:3 } ];\n"
    )
    url = f"surrealkv://{tmp_path / 't'}"
    result = run_cli("import", "--target", url, "--ns", "a", "--db", "b", str(dump), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [f["line"] for f in report["failures"]] == [4, 5]
    assert "already exists" in report["failures"][0]["message"]
    with connect(url) as conn:
        conn.use("a", "b")
        assert conn.run_one("SELECT VALUE <string> id FROM t") == ["t:1", "t:3"]


def test_import_refuses_a_non_empty_database_unless_forced(store: str, tmp_path: Path) -> None:
    dump = tmp_path / "extra.surql"
    dump.write_text("CREATE extra:1;\n")
    result = run_cli("import", "--target", store, "--ns", "acme", "--db", "prod", str(dump))
    assert result.returncode == 2
    assert "not empty" in one_error_line(result)
    assert "--force" in result.stderr
    result = run_cli(
        "import", "--target", store, "--ns", "acme", "--db", "prod", str(dump), "--force"
    )
    assert result.returncode == 0, result.stderr
