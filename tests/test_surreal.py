"""The connection (`spectron_backup.surreal`) as the flows rely on it when a run stops."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from spectron_backup.errors import OperationFailed, ServerUnreachable, UsageError
from spectron_backup.surreal import connect
from tasks.retries import is_transient


def test_closing_a_store_fails_its_waiting_and_later_queries_with_a_clear_error(
    tmp_path: Path,
) -> None:
    """A stopping run (Ctrl-C, a failed flow) closes its connections while other tasks still
    read through them: a query that was waiting must end, and a later one must say why."""
    url = f"surrealkv://{tmp_path / 'store'}"
    conn = connect(url)
    conn.use("ns", "db")
    conn.run("CREATE t:1")
    waiting = conn.submitter(2)("SLEEP 3s; RETURN 1")
    time.sleep(0.3)  # the query is in the engine
    conn.close()
    # timeout: only so that a regression fails instead of hanging the suite
    with pytest.raises(OperationFailed, match="was closed; the query did not run"):
        waiting.result(timeout=30)
    with pytest.raises(OperationFailed, match="was closed; the query did not run"):
        conn.query("RETURN 1")
    with pytest.raises(OperationFailed, match="was closed"):
        conn.use("ns", "db")
    with connect(url) as again:  # the store was released
        again.use("ns", "db")
        assert again.run_one("SELECT VALUE <string> id FROM t") == ["t:1"]


def test_closing_a_memory_store_fails_later_queries_with_a_clear_error() -> None:
    conn = connect("mem://")
    conn.close()
    with pytest.raises(OperationFailed, match="was closed; the query did not run"):
        conn.run_one("RETURN 1")


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_a_server_that_does_not_answer_is_exit_2_and_retried_by_the_flows(scheme: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ServerUnreachable) as refused:
        connect(f"{scheme}://127.0.0.1:{port}")
    assert refused.value.exit_code == 2 and is_transient(refused.value)
    assert str(refused.value).startswith(f"cannot reach SurrealDB at {scheme}://127.0.0.1:{port}")
    assert str(refused.value).endswith("(check the URL, and that the server is up)")


def test_a_missing_embedded_store_is_not_retried(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as missing:
        connect(f"surrealkv://{tmp_path / 'nothing-here'}", must_exist=True)
    assert missing.value.exit_code == 2 and not is_transient(missing.value)
