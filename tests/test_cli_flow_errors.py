"""What an operator sees when `backup`, `drill`, `prune` or `expire` (the commands that run a
Prefect flow in their own process) fail or are interrupted, through the real command line:
the tool's own errors end stderr with one `error:` line and no traceback (the Prefect API
still stores the traceback, in the flow run's logs), Ctrl-C ends the command promptly with
status 130, and options that cannot work are refused before Prefect starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.surreal import connect
from tests.conftest import ROOT
from tests.flow_runs import logs_of

pytestmark = pytest.mark.usefixtures("prefect_api")

#: a hang check, not a benchmark: before the fix Ctrl-C took about 75 s
INTERRUPT_BOUND_SECONDS = 30
#: the Prefect line the engine logs as it starts running the flow's code
FLOW_STARTED = "Beginning flow run"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small seeded Spectron instance (embedded store): control plane, job queue and two
    Contexts (acme-prod, globex-main), about 2,100 records."""
    url = f"surrealkv://{tmp_path_factory.mktemp('spectron') / 'store'}"
    with connect(url) as conn:
        seed_instance(conn, SeedPlan(contexts=2, scale=1.0, seed=5, embedding_width=8))
    return url


def write_config(
    tmp_path: Path, source: str, target: str, *extra: str, source_extra: str = "", s3: str = ""
) -> Path:
    """A configuration file; `s3` is the endpoint of an s3:// target."""
    target_extra = f", max_attempts: 2, endpoint_url: '{s3}'" if s3 else ""
    path = tmp_path / "config.yaml"
    path.write_text(
        "\n".join(
            [
                f"source: {{url: '{source}'{source_extra}}}",
                f"target: {{url: '{target}'{target_extra}}}",
                "backups: {retries: 1, retry_delay_seconds: 0}",
                *extra,
            ]
        )
        + "\n"
    )
    return path


def s3_target(tmp_path: Path, source: str, bucket: str, endpoint: str) -> Path:
    return write_config(tmp_path, source, f"s3://{bucket}/prod", s3=endpoint)


def assert_one_clean_error(
    result: subprocess.CompletedProcess[str], exit_code: int, expected: str
) -> str:
    """The command ended with `exit_code`, stderr's last line is its one `error:` line (naming
    `expected`), and no Python traceback was printed anywhere on the console."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert expected in lines[-1], result.stderr
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]], result.stderr
    return lines[-1]


def assert_refused_before_prefect(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """Exit 2 and the error line only: no flow run, no Prefect log line before it."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (
        result.stderr
    )


def stored_logs(flow_name: str, config: Path, needle: str, timeout: float = 20) -> str:
    """The logs the Prefect API stored for the run of `flow_name` with this configuration
    file, once they contain `needle` (the CLI's process sends them as it exits)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=200
            )
        [run] = [r for r in runs if r.parameters.get("config_path") == str(config)]
        text = logs_of(run.id)
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.3)


# -- the tool's errors at run time: one line on the console, the traceback in the API ------------


def test_a_backup_into_a_bucket_that_does_not_exist(
    source: str, tmp_path: Path, s3_server: str, s3_bucket: str, cli_with_prefect
) -> None:
    config = s3_target(tmp_path, source, "no-such-bucket-here", s3_server)
    result = cli_with_prefect("backup", "--config", str(config))
    assert_one_clean_error(result, 2, "no-such-bucket-here")
    assert FLOW_STARTED in result.stderr  # a run-time failure, not one of configuration
    logs = stored_logs("backup", config, "Traceback")
    assert "Traceback" in logs and "UsageError" in logs and "no-such-bucket-here" in logs


def test_a_backup_whose_uploads_are_cut_fails_after_its_retries(
    source: str, tmp_path: Path, s3_bucket: str, cutting_proxy, cli_with_prefect
) -> None:
    proxy = cutting_proxy(cut_upstream_after=20_000)  # every upload that gets that far
    config = s3_target(tmp_path, source, s3_bucket, proxy.url)
    result = cli_with_prefect("backup", "--config", str(config))
    assert_one_clean_error(result, 1, "no manifest written")
    assert "Retry 1/1" in result.stderr  # progress lines stay, without their tracebacks
    logs = stored_logs("backup", config, "Traceback")
    assert "Traceback" in logs and "BackupFailed" in logs


def test_a_prune_of_a_bucket_that_does_not_exist(
    source: str, tmp_path: Path, s3_server: str, s3_bucket: str, cli_with_prefect
) -> None:
    config = s3_target(tmp_path, source, "no-such-bucket-either", s3_server)
    result = cli_with_prefect("prune", "--config", str(config), "--dry-run")
    assert_one_clean_error(result, 2, "no-such-bucket-either")
    assert "Traceback" in stored_logs("prune", config, "Traceback")


def test_a_drill_of_a_backup_that_does_not_exist(
    source: str, tmp_path: Path, cli_with_prefect
) -> None:
    (tmp_path / "target").mkdir()
    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    missing = "20200101T000000Z-abcdef"
    result = cli_with_prefect("drill", "--config", str(config), "--backup", missing)
    assert_one_clean_error(result, 1, f"backup {missing} does not exist")
    assert "Traceback" in stored_logs("restore-drill", config, "Traceback")


def test_an_expire_sweep_of_a_context_that_does_not_exist(
    source: str, tmp_path: Path, cli_with_prefect
) -> None:
    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    result = cli_with_prefect("expire", "--config", str(config), "--dry-run", "--context", "nope")
    assert_one_clean_error(result, 2, "no Context 'nope'")
    assert "Traceback" in stored_logs("expire-sweep", config, "Traceback")


SCRIPT = """
import sys
from prefect import flow
from spectron_backup.commands.flow_console import flow_console
from spectron_backup.errors import OperationFailed

@flow
def ours():
    try:
        raise OperationFailed("the tool's own error")
    except OperationFailed as exc:
        raise RuntimeError("wrapping it") from exc

@flow
def bug():
    {}["a bug in the code"]

for run in (ours, bug):
    try:
        with flow_console():
            run()
    except Exception as exc:
        print(f"raised {type(exc).__name__}", file=sys.stderr)
"""


def test_an_unexpected_exception_keeps_its_traceback(prefect_api: str) -> None:
    """Only the tool's errors (or what explicitly wraps one) lose their traceback: a bug's
    traceback is what a bug report needs."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_API_URL": prefect_api, "COLUMNS": "200"},
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    ours, bug = result.stderr.split("raised RuntimeError")
    assert "wrapping it" in ours and "Traceback" not in ours, result.stderr
    assert "KeyError: 'a bug in the code'" in bug and "Traceback" in bug, result.stderr


# -- refused before Prefect starts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("scratch", "expected"),
    [
        ("ftp://scratch.example/x", "--scratch: unsupported SurrealDB URL scheme ftp://"),
        (
            "rocksdb:///var/lib/scratch",
            "--scratch: rocksdb:///var/lib/scratch: rocksdb:// is not available",
        ),
        ("scratch-host:8000", "--scratch: not a SurrealDB URL"),
        ("ws://127.0.0.1:eight", "--scratch: not a valid SurrealDB URL"),
    ],
)
def test_a_drill_scratch_url_that_cannot_work_is_refused_before_prefect(
    source: str, tmp_path: Path, scratch: str, expected: str, cli_with_prefect
) -> None:
    (tmp_path / "target").mkdir()
    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    result = cli_with_prefect("drill", "--config", str(config), "--scratch", scratch)
    assert_refused_before_prefect(result, expected)


def test_a_configured_drill_scratch_url_that_cannot_work_is_refused_before_prefect(
    source: str, tmp_path: Path, cli_with_prefect
) -> None:
    (tmp_path / "target").mkdir()
    config = write_config(
        tmp_path, source, f"file://{tmp_path / 'target'}", "drill: {scratch_url: 'ftp://x/y'}"
    )
    result = cli_with_prefect("drill", "--config", str(config))
    assert_refused_before_prefect(result, "drill.scratch_url: unsupported SurrealDB URL scheme")


def test_an_expire_of_a_context_the_configuration_leaves_out_is_refused_before_prefect(
    source: str, tmp_path: Path, cli_with_prefect
) -> None:
    config = write_config(
        tmp_path,
        source,
        f"file://{tmp_path / 'target'}",
        source_extra=", contexts: {exclude: [acme-prod]}",
    )
    result = cli_with_prefect(
        "expire", "--config", str(config), "--dry-run", "--context", "acme-prod"
    )
    assert_refused_before_prefect(result, "left out by source.contexts")


# -- Ctrl-C --------------------------------------------------------------------------------------


def without_prefect_api(**extra: str) -> dict[str, str]:
    """The environment of a terminal with no PREFECT_API_URL: commands start Prefect's
    temporary server."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**env, "COLUMNS": "200", **extra}


def interrupt_when_running(*args: str) -> tuple[int, str, float, int]:
    """Run the command line as from a terminal with no PREFECT_API_URL (so with Prefect's
    temporary server, a child in the same process group), and press Ctrl-C as the flow starts
    running: SIGINT to the whole process group, as a terminal sends it. Returns the exit
    status, stderr, the seconds from Ctrl-C to exit and the process group."""
    process = subprocess.Popen(
        [sys.executable, "-m", "spectron_backup.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=without_prefect_api(),
        cwd=ROOT,
        start_new_session=True,
    )
    lines: list[str] = []
    pressed: list[float] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if not pressed and FLOW_STARTED in line:
                pressed.append(time.monotonic())
                os.killpg(process.pid, signal.SIGINT)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        process.wait(timeout=120 + INTERRUPT_BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(timeout=10)
    assert pressed, "".join(lines)
    seconds = time.monotonic() - pressed[0]
    return process.returncode, "".join(lines), seconds, process.pid


def processes_left(group: int, wait: float = 10) -> bool:
    """Whether any process of `group` (the temporary server) is still running."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.2)


@pytest.mark.parametrize("command", ["backup", "drill"])
def test_ctrl_c_ends_the_command_promptly_with_status_130(
    command: str, source: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, source, f"file://{tmp_path / 'target'}")
    if command == "drill":
        from flows.backup import backup

        backup(config_path=str(config))
    status, stderr, seconds, group = interrupt_when_running(command, "--config", str(config))
    assert seconds < INTERRUPT_BOUND_SECONDS, (seconds, stderr)
    assert status == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1] == "interrupted", stderr
    assert "Traceback" not in stderr, stderr
    assert not processes_left(group), "the temporary Prefect server outlived the command"


# -- the temporary Prefect server ----------------------------------------------------------------


def prune_config(tmp_path: Path, source: str) -> Path:
    """A configuration whose `prune` runs a flow quickly: an empty local target."""
    (tmp_path / "target").mkdir()
    return write_config(tmp_path, source, f"file://{tmp_path / 'target'}")


def test_the_first_command_on_a_new_prefect_home_waits_for_its_database(
    source: str, tmp_path: Path
) -> None:
    """The temporary server's first start on a new PREFECT_HOME creates and migrates its
    database (22.7 s on an idle 2-core machine, past Prefect's 20 s). With Prefect's own
    timeout at 1 s, which no new database meets, the command still waits for it."""
    config = prune_config(tmp_path, source)
    home = tmp_path / "new-prefect-home"
    result = subprocess.run(
        [sys.executable, "-m", "spectron_backup.cli", "prune", "--config", str(config)],
        capture_output=True,
        text=True,
        env=without_prefect_api(
            PREFECT_HOME=str(home), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1"
        ),
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Starting temporary server" in result.stderr
    assert (home / "prefect.db").is_file()


def test_a_temporary_server_that_does_not_answer_is_one_error_line(
    source: str, tmp_path: Path
) -> None:
    """A PREFECT_HOME the server cannot write its database to: it never answers. The command
    ends with one error line saying what to do, not Prefect's RuntimeError traceback (the
    wait is cut to 3 s here; a command waits STARTUP_SECONDS)."""
    config = prune_config(tmp_path, source)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    command = f"""
import sys
import spectron_backup.commands.flow_console as flow_console
from spectron_backup.cli import main

flow_console.STARTUP_SECONDS = 3
sys.argv = ["spectron-backup", "prune", "--config", {str(config)!r}]
main()
"""
    result = subprocess.run(
        [sys.executable, "-c", command],
        capture_output=True,
        text=True,
        env=without_prefect_api(
            PREFECT_HOME=str(blocker / "home"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1"
        ),
        cwd=ROOT,
        timeout=120,
    )
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert result.returncode == 1, result.stderr
    assert last.startswith("error: the temporary Prefect API server did not answer within 3 s")
    assert "PREFECT_API_URL" in last
