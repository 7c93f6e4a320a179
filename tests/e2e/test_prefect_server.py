"""The deployments as an operator runs them: a real `prefect server start` on loopback (its own
temporary PREFECT_HOME), `python -m deployments.deploy` (what `make deploy` runs), a real
`prefect worker start`, and flow runs created through the API from the deployments. The
backup goes to moto's S3 server over HTTP from a seeded embedded SurrealDB; alerts arrive at
a Slack-like webhook on loopback, sent by the server's automations.

One server, worker and receiver for the whole module; every process is stopped at the end,
also when a test fails. Measured on the project machine (2 shared cores): 69-86 s for the module."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployments.automations import load_definitions
from deployments.deploy import deployments_of
from tests.flow_runs import Webhook, webhook_listening
from tests.s3server import S3_TEST_ENV, S3_TEST_UNSET

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
POOL = "spectron-backup"
#: the secret part of the webhook URL: never in any output, log, block or message
HOOK_SECRET = "T0E2E/B0E2E/e2e-secret-5b7d0c"
#: the missing-backup alert's window in this test (26h in deployments/automations.yaml)
SHORT_WINDOW_SECONDS = 10
CONTEXT_DB = "ctx_acme_prod/acme_prod"
PREFECT = (sys.executable, "-m", "prefect")


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM to the process group, then SIGKILL if it lingers (a worker whose server is gone
    retries for a long time)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Server:
    api: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base = {k: v for k, v in base.items() if k not in S3_TEST_UNSET}
    env = {
        **base,
        **S3_TEST_ENV,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    }
    log = home / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: healthy(api), 120, lambda: f"server not up:\n{tail(log)}", proc)
        yield Server(api, {**env, "PREFECT_API_URL": api}, log, proc)
    finally:
        stop(proc)


def healthy(api: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    why: Callable[[], str],
    proc: subprocess.Popen | None = None,
    every: float = 0.5,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}): {why()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {why()}")
        time.sleep(every)


@contextmanager
def api_client(server: Server) -> Iterator[Any]:
    """A sync Prefect client on this module's server, whatever other tests set up."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(updates={PREFECT_API_URL: server.api}),
        get_client(sync_client=True) as client,
    ):
        yield client


# -- the webhook receiver ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Webhook]:
    with webhook_listening(HOOK_SECRET) as hook:
        yield hook


# -- the Spectron instance, the backup target and the configuration ---------------------------


@dataclass
class Site:
    config: Path
    bucket: str
    s3: str


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, s3_server: str, receiver: Webhook, server: Server
) -> Site:
    root = tmp_path_factory.mktemp("site")
    source = f"surrealkv://{root / 'spectron'}"
    seeded = subprocess.run(
        [
            *(sys.executable, "-m", "spectron_backup.cli", "seed", "--target", source),
            *("--documents", f"file://{root / 'documents'}", "--contexts", "1"),
            *("--scale", "0.2", "--embedding-width", "8", "--seed", "8"),
        ],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seeded.returncode == 0, seeded.stderr
    bucket = f"e2e-{os.getpid()}-{int(time.time())}"
    client = s3_client(s3_server)
    client.create_bucket(Bucket=bucket)
    client.close()
    config = root / "config.yaml"
    config.write_text(
        f"source: {{url: '{source}'}}\n"
        f"target: {{url: 's3://{bucket}/prod', endpoint_url: '{s3_server}', max_attempts: 2}}\n"
        f"documents: {{url: 'file://{root / 'documents'}'}}\n"
        f"alerts: {{webhook_url: '{receiver.url}'}}\n"
    )
    return Site(config, bucket, s3_server)


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# -- deploy, then a worker --------------------------------------------------------------------

_APPLY_SHORT_WINDOW = """
import json, sys
from datetime import timedelta
from deployments.automations import EventMissing, apply_automations, load_definitions
from spectron_backup.config import load_config
alerts = load_definitions()
for alert in alerts:
    if isinstance(alert, EventMissing):
        alert.within = timedelta(seconds=int(sys.argv[2]))
print(json.dumps(apply_automations(load_config(sys.argv[1]), alerts)))
"""


@dataclass
class Deployed:
    output: str
    short_window_report: dict[str, Any]


@pytest.fixture(scope="module")
def deployed(server: Server, site: Site) -> Deployed:
    """`make deploy`'s command, then the same automations with a 10 s missing-backup window
    (applying again must leave the unchanged ones alone)."""
    result = subprocess.run(
        [sys.executable, "-m", "deployments.deploy", "--config", str(site.config)],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    again = subprocess.run(
        [sys.executable, "-c", _APPLY_SHORT_WINDOW, str(site.config), str(SHORT_WINDOW_SECONDS)],
        env=server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    return Deployed(result.stdout + result.stderr, json.loads(again.stdout))


@pytest.fixture(scope="module")
def worker(server: Server, site: Site, deployed: Deployed) -> Iterator[Path]:
    """`prefect worker start --pool spectron-backup`; the configuration from its environment."""
    log = server.log.with_name("worker.log")
    env = {
        **server.env,
        "SPECTRON_BACKUP_CONFIG": str(site.config),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", POOL, "--name", "e2e-worker"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield log
    finally:
        stop(proc)


@dataclass
class Run:
    id: Any
    name: str
    state: str
    message: str | None


def run_deployment(
    server: Server, worker_log: Path, name: str, parameters: dict[str, Any] | None = None
) -> Run:
    """Create a flow run of the deployment through the API; wait until it is final."""
    with api_client(server) as client:
        deployment = client.read_deployment_by_name(name)
        flow_run = client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters or {}
        )

        def final() -> Any:
            state = client.read_flow_run(flow_run.id).state
            return state if state is not None and state.is_final() else None

        state = wait_until(
            final, 300, lambda: f"{name} run not final; worker log:\n{tail(worker_log)}", every=1
        )
    return Run(flow_run.id, flow_run.name, state.name, state.message)


def artifacts_of(server: Server, flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with api_client(server) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a.data for a in found}


def logs_of(server: Server, flow_run_ids: list[Any]) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with api_client(server) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)))
    return "\n".join(log.message for log in logs)


@pytest.fixture(scope="module")
def backup_run(server: Server, worker: Path) -> Run:
    run = run_deployment(server, worker, "backup/daily")
    assert run.state == "Completed", f"{run.message}\n{tail(worker)}"
    return run


@pytest.fixture(scope="module")
def drill_run(server: Server, worker: Path, site: Site, backup_run: Run) -> Run:
    # The configuration as a parameter this time (the backup took it from the environment).
    run = run_deployment(
        server, worker, "restore-drill/daily", {"config_path": str(site.config), "backup": "latest"}
    )
    assert run.state == "Completed", f"{run.message}\n{tail(worker)}"
    return run


# -- the tests --------------------------------------------------------------------------------


def test_deploy_creates_pool_deployments_and_automations(server: Server, deployed: Deployed):
    output = deployed.output
    assert "work pool 'spectron-backup' created" in output
    [deployed_line] = [line for line in output.splitlines() if "deployed from" in line]
    names = deployed_line.split(": ", 1)[1].split(", ")
    assert {"backup/daily", "restore-drill/daily", "expire-sweep/hourly", "prune/ad-hoc"} <= set(
        names
    )
    assert len(names) == len(deployments_of())
    assert f"prefect worker start --pool {POOL}" in output
    assert f"Open the UI: {server.api.removesuffix('/api')}/deployments" in output
    # Applied again with one window changed: that one updated, the rest left alone.
    report = deployed.short_window_report
    assert report["updated"] == ["spectron-backup: no backup in 26 hours"]
    assert len(report["unchanged"]) == len(load_definitions()) - 1
    assert report["created"] == report["deleted"] == []

    with api_client(server) as client:
        pool = client.read_work_pool(POOL)
        assert pool.type == "process"
        expected = {
            "backup/daily": ("0 2 * * *", "ENQUEUE"),
            "restore-drill/daily": ("0 5 * * *", "ENQUEUE"),
            "expire-sweep/hourly": ("0 * * * *", "CANCEL_NEW"),
            "prune/ad-hoc": (None, "ENQUEUE"),
        }
        for name, (cron, strategy) in expected.items():
            deployment = client.read_deployment_by_name(name)
            assert deployment.work_pool_name == POOL
            assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == (
                [(cron, "UTC")] if cron else []
            ), name
            assert deployment.global_concurrency_limit.limit == 1, name
            assert deployment.concurrency_options.collision_strategy == strategy, name
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
            ]
            assert deployment.enforce_parameter_schema
        backup = client.read_deployment_by_name("backup/daily")
        tier = backup.parameter_openapi_schema["properties"]["tier"]
        assert tier["enum"] == ["auto", "daily", "weekly"] and tier["description"]
        automations = {
            a.name for a in client.read_automations() if a.name.startswith("spectron-backup: ")
        }
        assert automations == {f"spectron-backup: {a.name}" for a in load_definitions()}
        assert automations >= {
            "spectron-backup: backup failed",
            "spectron-backup: expire sweep failed",
            "spectron-backup: no backup in 26 hours",
            "spectron-backup: restore drill failed",
        }
        # A parameter the form would refuse is refused by the API as well.
        drill = client.read_deployment_by_name("restore-drill/daily")
        with pytest.raises(Exception, match="backup"):
            client.create_flow_run_from_deployment(drill.id, parameters={"backup": "yesterday"})


def test_the_webhook_url_is_a_secret_of_the_block(server: Server, deployed: Deployed) -> None:
    import httpx

    documents = httpx.post(f"{server.api}/block_documents/filter", json={}, timeout=10).json()
    [block] = [d for d in documents if d["name"] == "spectron-backup-alerts"]
    assert block["data"]["url"] == "{{webhook_url}}"
    assert block["data"]["secrets"] == {"webhook_url": "********"}
    assert HOOK_SECRET not in json.dumps(documents)
    assert HOOK_SECRET not in deployed.output


def test_backup_deployment_runs_on_the_worker_and_publishes_its_report(
    server: Server, site: Site, backup_run: Run
) -> None:
    artifacts = artifacts_of(server, backup_run.id)
    summary = artifacts["spectron-backup-summary"]
    assert summary.startswith("# Backup ")
    backup_id = summary.split()[2]
    assert f"s3://{site.bucket}/prod" in summary
    rows = json.loads(artifacts["spectron-backup-databases"])
    assert {r["database"] for r in rows} == {"spectron/metadata", "spectron/_jobqueue", CONTEXT_DB}
    assert all(r["records"] > 0 for r in rows)
    assert "spectron-backup-retention" in artifacts
    client = s3_client(site.s3)
    manifest = client.get_object(Bucket=site.bucket, Key=f"prod/backups/{backup_id}/manifest.json")
    assert json.loads(manifest["Body"].read())["backup_id"] == backup_id
    client.close()


def test_drill_deployment_passes_on_the_fresh_backup(server: Server, drill_run: Run) -> None:
    artifacts = artifacts_of(server, drill_run.id)
    assert artifacts["spectron-drill-summary"].startswith("# Restore drill PASSED")
    checks = json.loads(artifacts["spectron-drill-checks"])
    assert checks and all(c["passed"] for c in checks)


def test_silence_after_the_last_backup_alerts(receiver: Webhook, backup_run: Run) -> None:
    """The missing-backup automation (a Prefect proactive trigger, here with a 10 s window)
    fires once the window after the backup's completed event passes without another, naming
    that backup, then reminds every window while the silence lasts. (A window that passed
    before the backup ended, on a slow machine, has already alerted with no backup named.)"""
    text = receiver.wait_for("The last one: 2", 90)  # a backup id: YYYYMMDD...
    assert text.startswith("*spectron-backup ALERT: no backup in 26 hours*")
    assert f"No spectron.backup.completed event in {SHORT_WINDOW_SECONDS}s" in text
    receiver.wait_for("None since the previous alert", 60, after=text)


def test_a_corrupted_backup_fails_the_drill_and_the_automation_alerts_once(
    server: Server, site: Site, worker: Path, receiver: Webhook, drill_run: Run
) -> None:
    client = s3_client(site.s3)
    [key] = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=site.bucket, Prefix="prod/backups/")["Contents"]
        if o["Key"].endswith(f"{CONTEXT_DB}.surql.zst")
    ]
    stored = client.get_object(Bucket=site.bucket, Key=key)
    data = bytearray(stored["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=site.bucket, Key=key, Body=bytes(data), Metadata=stored["Metadata"])
    client.close()

    run = run_deployment(server, worker, "restore-drill/daily")
    assert run.state == "Failed"
    text = receiver.wait_for("restore drill failed", 90)
    assert f"Flow run {run.name} of restore-drill (deployment restore-drill/daily)" in text
    assert "ended Failed" in text and "object_sha256_matches" in text
    assert f"{server.api.removesuffix('/api')}/runs/flow-run/{run.id}" in text
    assert "spectron-drill-summary" in text  # what the alert means, from automations.yaml
    summary = artifacts_of(server, run.id)["spectron-drill-summary"]
    assert summary.startswith("# Restore drill FAILED")
    # One message per failure: the flow's own hook saw the automation and stayed quiet.
    quiet = "drill failure alert left to the server's automation"
    wait_until(lambda: quiet in logs_of(server, [run.id]), 60, lambda: "no hook log line")
    assert sum("restore drill" in t.lower() for t in receiver.texts()) == 1


def test_a_failed_expire_sweep_alerts(server: Server, worker: Path, receiver: Webhook) -> None:
    run = run_deployment(server, worker, "expire-sweep/hourly", {"context": "no-such-context"})
    assert run.state == "Failed"
    text = receiver.wait_for("expire sweep failed", 90)
    assert f"Flow run {run.name} of expire-sweep (deployment expire-sweep/hourly)" in text
    assert "no Context 'no-such-context'" in text


def test_the_webhook_secret_never_reaches_logs_or_messages(
    server: Server, worker: Path, receiver: Webhook, backup_run: Run, drill_run: Run
) -> None:
    with api_client(server) as client:
        runs = client.read_flow_runs()
    assert len(runs) >= 2
    everything = [logs_of(server, [r.id for r in runs]), worker.read_text(), server.log.read_text()]
    everything += receiver.texts()
    for text in everything:
        assert HOOK_SECRET not in text
    assert all(m["path"] == f"/services/{HOOK_SECRET}" for m in receiver.received)
