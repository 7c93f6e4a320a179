"""Looking behind a flow run on the test Prefect API (its events, artifacts and logs), and a
Slack-like webhook on loopback that keeps the alerts the flows post."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: the secret part of the webhook URL: it must never show up in logs, artifacts or records
HOOK_SECRET = "T0DRILL/B0DRILL/not-for-logs-9f3c1a"


@dataclass
class Webhook:
    url: str
    #: every message, as {"path": ..., "json": ...}, in the order received
    received: list[dict[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def texts(self) -> list[str]:
        with self.changed:
            return [m["json"].get("text", "") for m in self.received]

    def wait_for(self, needle: str, timeout: float, *, after: str | None = None) -> str:
        """The text of the first message containing `needle`, waiting up to `timeout` s; with
        `after`, the first one received after the message whose text that is."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                texts = [message["json"].get("text", "") for message in self.received]
                if after is not None:
                    texts = texts[texts.index(after) + 1 :] if after in texts else []
                for text in texts:
                    if needle in text:
                        return text
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no webhook message with {needle!r} in {timeout}s; got {self.texts()}"
                    )
                self.changed.wait(left)


@contextmanager
def webhook_listening(secret: str = HOOK_SECRET) -> Iterator[Webhook]:
    """A Slack-like incoming webhook on loopback that keeps every JSON message POSTed to it,
    at `/services/<secret>`."""
    hook = Webhook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with hook.changed:
                hook.received.append({"path": self.path, "json": json.loads(body)})
                hook.changed.notify_all()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/services/{secret}"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


def wait_for_event(name: str, flow_run_id: Any, timeout: float = 20) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:  # events are delivered asynchronously
            events = client.read_events(
                EventFilter(event=EventNameFilter(name=[name])), limit=50
            ).events
            for event in events:
                related = {r.get("prefect.resource.id") for r in event.related}
                if f"prefect.flow-run.{flow_run_id}" in related:
                    return event.payload
            if time.monotonic() > deadline:
                raise AssertionError(f"no {name} event for flow run {flow_run_id}")
            time.sleep(0.3)


def artifacts_of(flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a.data for a in found}


def logs_of(flow_run_id: Any) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200
        )
    return "\n".join(log.message for log in logs)
