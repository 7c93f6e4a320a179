"""moto's S3 server over real HTTP on 127.0.0.1, in a child process: for tests and benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# The server runs in a child process, not in a thread of the test process: its memory (moto
# keeps every object) and its threads stay out of the tests' tracemalloc measurements and GIL.
_MOTO_SERVER = """
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
sys.stdin.read()  # until the test session closes our stdin (or dies)
server.stop()
"""

# Dummy credentials, nothing from ~/.aws or instance metadata, no HTTP proxy for loopback.
S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
S3_TEST_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL")


@contextmanager
def moto_s3_server(env: dict[str, str] | None = None) -> Iterator[str]:
    """Start the server; yield its endpoint URL (http://127.0.0.1:PORT); stop it at the end.
    `env`: more of the server's environment (INITIAL_NO_AUTH_ACTION_COUNT turns on moto's IAM
    checks after that many requests)."""
    base = {k: v for k, v in os.environ.items() if k not in S3_TEST_UNSET}
    proc = subprocess.Popen(
        [sys.executable, "-c", _MOTO_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**base, **S3_TEST_ENV, **(env or {})},
    )
    try:
        endpoint = (proc.stdout.readline() if proc.stdout else "").strip()
        if not endpoint.startswith("http://"):
            raise RuntimeError(f"moto server did not start (exit status {proc.poll()})")
        yield endpoint
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
