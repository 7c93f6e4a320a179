"""The flows' failure hook: a webhook alert when a flow run fails or crashes.

One helper for every flow that alerts (the restore drill, the bucket guard): the hook reads
the run's configuration (its `config_path` parameter), and when `alerts.webhook_url` is set
posts a Slack-compatible message: the flow's title, the reasons (an exception's `failures`
list, else its text, else the state's message) and the flow run, unless an automation on the
Prefect server already alerts on this flow's failed runs (then the server sends the one
message). It never raises and never names the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spectron_backup.alerts import failure_message, post_webhook
from spectron_backup.config import load_config
from spectron_backup.errors import SpectronBackupError

Hook = Callable[[Any, Any, Any], None]


def webhook_alert_hook(what: str, title: Callable[[BaseException | None], str]) -> Hook:
    """A flow hook (on_failure, on_crashed) for the flow named `what` in log lines; `title`
    makes the alert's title from the run's exception (None when there is none)."""

    def hook(flow: Any, flow_run: Any, state: Any) -> None:
        from prefect.logging.loggers import flow_run_logger
        from prefect.utilities.urls import url_for

        logger = flow_run_logger(flow_run, flow)
        parameters = flow_run.parameters or {}
        try:
            config = load_config(parameters.get("config_path"))
        except SpectronBackupError as exc:
            logger.error("no %s alert sent: the configuration cannot be read: %s", what, exc)
            return
        if config.alerts.webhook_url is None:
            return
        if alerted_by_automation(flow.name):
            # `make deploy` applied an automation that alerts on this flow's failed runs: one
            # message per failure, not two.
            logger.info("%s failure alert left to the server's automation", what)
            return
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as error:
            exc = error
        failure = exc if isinstance(exc, BaseException) else None
        failures = getattr(failure, "failures", None)
        if not failures:
            failures = [str(failure) if failure is not None else (state.message or state.name)]
        try:
            link = url_for(flow_run)
        except Exception:
            link = None
        message = failure_message(title(failure), list(failures), str(flow_run.id), url=link)
        try:
            post_webhook(config.alerts.webhook_url, message)
        except SpectronBackupError as error:
            logger.error("the %s alert could not be posted: %s", what, error)
            return
        logger.info("%s failure alert posted to the configured webhook", what)

    hook.__name__ = hook.__qualname__ = f"alert_on_{what.replace(' ', '_')}_failure"
    return hook


def alerted_by_automation(flow_name: str) -> bool:
    """True when an enabled automation on the Prefect server already alerts on failed runs of
    this flow (deployments/automations.py); False when none does or the server cannot say,
    so that the hook alerts rather than nobody."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            automations = client.read_automations()
    except Exception:
        return False
    for automation in automations:
        trigger = automation.trigger
        if not automation.enabled or "prefect.flow-run.Failed" not in getattr(
            trigger, "expect", ()
        ):
            continue
        related = getattr(trigger, "match_related", None)
        specs = related if isinstance(related, list) else [related]
        for spec in specs:
            names = spec.get("prefect.resource.name") if spec is not None else None
            if names and flow_name in names and automation.actions:
                return True
    return False
