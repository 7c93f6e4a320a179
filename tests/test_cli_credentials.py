"""Refused credentials and permissions, as an operator meets them on the command line.

The server is tests/surreal_edge.py, a loopback imitation of SurrealDB 3.x's HTTP RPC (there is
no server binary here); the CLI and the SDK run for real in a child process against its socket.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.surreal_edge import surreal_edge

WRONG_PASSWORD = "hunter2-wrong-password"
RIGHT_PASSWORD = "correct-horse-battery-staple"
WRONG_TOKEN = "eyJhbGciOiJIUzUxMiJ9.eyJJRCI6Im1hbGxvcnkifQ.d3Jvbmctc2lnbmF0dXJl"

# Nothing from the caller's shell: no credentials of theirs, no proxy in front of loopback.
CLEAN_ENV = {
    "SURREAL_USER": "",
    "SURREAL_PASS": "",
    "SURREAL_TOKEN": "",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def export(url: str, out: Path, *args: str, env: dict[str, str] | None = None):
    return run_cli(
        "export",
        "--source",
        url,
        "--ns",
        "acme",
        "--db",
        "prod",
        "-o",
        str(out),
        *args,
        env={**CLEAN_ENV, **(env or {})},
    )


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]


def assert_nothing_left(tmp_path: Path) -> None:
    """Neither the -o file nor the atomic writer's hidden temporary file."""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("how", ["SURREAL_PASS", "-p"])
def test_wrong_password_is_one_clear_line_and_exit_2(how: str, tmp_path: Path) -> None:
    with surreal_edge(username="root", password=RIGHT_PASSWORD) as server:
        if how == "-p":
            result = export(server.url, tmp_path / "acme.surql", "-u", "root", "-p", WRONG_PASSWORD)
        else:
            result = export(
                server.url, tmp_path / "acme.surql", "-u", "root", env={how: WRONG_PASSWORD}
            )
        methods = list(server.methods)

    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert "refused user 'root'" in line
    assert server.url in line
    assert "There was a problem with authentication" in line
    assert "check the credentials" in line
    assert WRONG_PASSWORD not in result.stdout + result.stderr
    assert_nothing_left(tmp_path)
    assert methods == ["version", "signin"]  # nothing tried after the refusal


def test_wrong_token_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    with surreal_edge() as server:
        result = export(server.url, tmp_path / "acme.surql", env={"SURREAL_TOKEN": WRONG_TOKEN})
        methods = list(server.methods)

    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert "refused the token" in line
    assert server.url in line
    assert "check the credentials" in line
    assert WRONG_TOKEN not in result.stdout + result.stderr
    assert_nothing_left(tmp_path)
    assert methods == ["version", "authenticate"]


def test_token_that_is_not_a_jwt_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    """The SDK refuses such a token itself (ValueError, before sending anything)."""
    token = "not-a-jwt-secret-value"
    with surreal_edge() as server:
        result = export(server.url, tmp_path / "acme.surql", "--token", token)
        methods = list(server.methods)

    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert "token" in line
    assert server.url in line
    assert "check SURREAL_TOKEN" in line
    assert token not in result.stdout + result.stderr
    assert_nothing_left(tmp_path)
    assert methods == ["version"]


def test_signed_in_but_refused_permission_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    """The password is right, but the user may not read the catalogue: the operator's
    configuration, so exit status 2, naming the server, the user and what to check."""
    with surreal_edge(password=RIGHT_PASSWORD, refuse_queries=True) as server:
        result = export(
            server.url, tmp_path / "acme.surql", "-u", "root", env={"SURREAL_PASS": RIGHT_PASSWORD}
        )
        methods = list(server.methods)

    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert server.url in line
    assert "refused user 'root' permission" in line
    assert "Not enough permissions" in line
    assert "roles" in line and "--auth-ns" in line
    assert RIGHT_PASSWORD not in result.stdout + result.stderr
    assert_nothing_left(tmp_path)
    assert methods == ["version", "signin", "query"]  # stopped at the first refused query
