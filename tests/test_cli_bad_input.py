"""Bad input an operator types, through the real command line: one line naming the problem,
exit status 2, nothing half-written, and no secret typed into a URL echoed back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from spectron_backup.surreal import connect
from spectron_backup.urls import redact_text, redact_url
from tests.conftest import EXPORT_FIXTURES, ROOT, run_cli

SECRET = "S3CRET-pw-123"
ACME = EXPORT_FIXTURES / "acme__prod.surql"


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line of a refused command (and that nothing else was printed)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert SECRET not in result.stdout + result.stderr
    return lines[0]


def import_bytes(data: bytes, target: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spectron_backup.cli",
            "import",
            "--target",
            target,
            "--ns",
            "a",
            "--db",
            "b",
            "-",
        ],
        input=data,
        capture_output=True,
        env={**os.environ, "COLUMNS": "200"},
        cwd=ROOT,
        timeout=600,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


@pytest.mark.parametrize(
    "url",
    [
        f"ws://root:{SECRET}@127.0.0.1:notaport",
        f"ws://root:{SECRET}@[::1",
        f"root:{SECRET}@127.0.0.1:8000",
        f"ws:/root:{SECRET}@127.0.0.1:8000",
        f"surrealkv://root:{SECRET}@/nonexistent/store",
        f"ws://127.0.0.1:1?token={SECRET}",
    ],
)
def test_a_malformed_source_url_is_refused_without_its_secret(url: str, tmp_path: Path) -> None:
    result = run_cli("export", "--source", url, "--ns", "a", "--db", "b", "-o", str(tmp_path / "x"))
    one_error(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SPECTRON_BACKUP__TARGET__URL", f"s3://AKIAX:{SECRET}@bucket/prefix"),
        ("SPECTRON_BACKUP__TARGET__URL", f"ftp://u:{SECRET}@host/x"),
    ],
)
def test_a_bad_target_url_is_refused_without_its_secret(
    variable: str, value: str, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("source: {url: 'mem://'}\ntarget: {url: 'file:///tmp/x'}\n")
    result = run_cli("list", "--config", str(config), env={variable: value})
    assert "AKIAX@bucket" in one_error(result) or "u@host" in one_error(result)


def test_secrets_in_library_messages_are_removed() -> None:
    message = 'Could not connect to the endpoint URL: "http://u:' + SECRET + '@127.0.0.1:1/b?x=1"'
    assert (
        redact_text(message)
        == 'Could not connect to the endpoint URL: "http://u@127.0.0.1:1/b?x=1"'
    )
    assert redact_url(f"ws://root:{SECRET}:more@host:8000/rpc") == "ws://root@host:8000/rpc"
    assert redact_url("ws://host:8000/rpc") == "ws://host:8000/rpc"


def test_a_scratch_url_with_a_password_is_refused_before_it_is_stored(tmp_path: Path) -> None:
    # A flow run's parameters are kept in the clear by Prefect (and shown in its UI).
    config = tmp_path / "config.yaml"
    config.write_text("source: {url: 'mem://'}\ntarget: {url: 'file:///tmp/x'}\n")
    result = run_cli(
        "drill", "--config", str(config), "--scratch", f"ws://root:{SECRET}@127.0.0.1:1"
    )
    line = one_error(result)
    assert "SCRATCH_PASSWORD" in line and "ws://root@127.0.0.1:1" in line


def test_an_environment_override_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("source: {url: 'mem://'}\ntarget: {url: 'file:///tmp/x'}\n")
    result = run_cli(
        "list", "--config", str(config), env={"SPECTRON_BACKUP__SOURCE__CONTEXTS__INCLUDE": "acme"}
    )
    assert "given as JSON" in one_error(result)
    assert "pass --config FILE" in one_error(run_cli("list", env={"SPECTRON_BACKUP_CONFIG": ""}))


def test_export_to_a_directory_is_refused_before_exporting(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    result = run_cli(
        "export", "--source", "mem://", "--ns", "a", "--db", "b", "-o", str(tmp_path / "out")
    )
    assert "is a directory" in one_error(result)
    assert list((tmp_path / "out").iterdir()) == []


def test_demo_workdir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_error(run_cli("demo", "--workdir", str(tmp_path / "file")))


def test_stdin_is_checked_like_a_file_and_may_be_compressed(tmp_path: Path) -> None:
    target = f"surrealkv://{tmp_path / 'store'}"
    text = ACME.read_bytes()
    cut = import_bytes(text[: len(text) // 3], target)
    assert "dump file - is truncated" in one_error(cut)
    with connect(target) as conn:  # nothing imported
        assert "a" not in conn.namespaces()
    compressed = import_bytes(zstandard.ZstdCompressor().compress(text), target)
    assert compressed.returncode == 0, compressed.stderr
    with connect(target) as conn:
        conn.use("a", "b")
        assert conn.run_one("INFO FOR DB")["tables"]
