"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults import CuttingProxy
from tests.flow_runs import Webhook, webhook_listening
from tests.s3server import S3_TEST_ENV, S3_TEST_UNSET, moto_s3_server

ROOT = Path(__file__).resolve().parent.parent
# No telemetry and no state outside the project, whoever runs the tests (make sets these too).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    # Each pytest-xdist worker its own Prefect home: two temporary servers must not migrate or
    # write one SQLite database at once (the commands run without PREFECT_API_URL start one).
    home = Path(os.environ["PREFECT_HOME"]) / "workers" / worker
    home.mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
    os.environ["PREFECT_HOME"] = str(home)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPORT_FIXTURES = FIXTURES / "surreal-3.0.2-export"


def run_cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `spectron-backup` command line in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "spectron_backup.cli", *args],
        capture_output=True,
        text=True,
        input=input,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd or ROOT,
        timeout=600,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def s3_server():
    """Endpoint URL (http://127.0.0.1:PORT) of a real S3 API server: moto's ThreadedMotoServer."""
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_client(s3_server, s3_bucket):
    """A plain boto3 client on the test server, to look behind the code under test."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A new, empty bucket (unique name) on the test server; the test's environment holds the
    dummy credentials (S3_TEST_ENV), so code using the standard AWS chain reaches it."""
    import uuid

    import boto3

    for name in S3_TEST_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in S3_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    client.close()
    return bucket


@pytest.fixture
def cutting_proxy(s3_server) -> Iterator[Callable[..., CuttingProxy]]:
    """cutting_proxy(**options) -> a CuttingProxy in front of the moto server."""
    proxies: list[CuttingProxy] = []

    def make(**options) -> CuttingProxy:
        proxy = CuttingProxy(s3_server, **options)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API (the test harness: a temporary server with its own SQLite DB)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield PREFECT_API_URL.value()


@pytest.fixture
def cli_with_prefect(prefect_api: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_cli for commands that run flows: they use the harness's API, not a server of their own."""

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        env = {"PREFECT_API_URL": prefect_api, **kwargs.pop("env", {})}
        return run_cli(*args, env=env, **kwargs)

    return run


@pytest.fixture(scope="session")
def webhook_server() -> Iterator[Webhook]:
    """A Slack-like webhook on loopback (tests/flow_runs.py), for the flows' alerts."""
    with webhook_listening() as hook:
        yield hook


@pytest.fixture
def webhook(webhook_server: Webhook) -> Webhook:
    """The webhook, with no message received yet."""
    webhook_server.received.clear()
    return webhook_server
