"""Alert automations kept as code: `deployments/automations.yaml` -> Prefect automations that
send a Slack-compatible JSON message through a webhook notification block.

    python -m deployments.automations [--config F] [--dry-run] [--json]

The block (`spectron-backup-alerts`, a Custom Webhook) is built from `alerts.webhook_url`; the
URL lives in the block's secrets, so the Prefect UI and API show it obfuscated. Applying is
idempotent: the automations named `spectron-backup: <name>` are created or updated to match
the file, and those whose entry is gone are deleted. The server renders the messages (Jinja,
with the failed flow run or the last event in context) and posts them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import typer
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError

from spectron_backup.alerts import scrub
from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import JsonOutput, reports_errors, run_app
from spectron_backup.config import Config, load_config
from spectron_backup.console import err, print_json
from spectron_backup.durations import format_duration, parse_duration
from spectron_backup.errors import OperationFailed, UsageError

#: automations whose name starts with this are ours: created, updated and deleted by `apply`
PREFIX = "spectron-backup: "
BLOCK_NAME = "spectron-backup-alerts"
DEFINITIONS = Path(__file__).with_name("automations.yaml")
FAILED_STATES = ["Failed", "Crashed", "TimedOut"]


class _Alert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    meaning: str = ""


class FlowRunFailed(_Alert):
    """A run of `flow` ends in one of `states`."""

    kind: Literal["flow-run-failed"]
    flow: str
    states: list[str] = Field(default_factory=lambda: list(FAILED_STATES), min_length=1)


class EventMissing(_Alert):
    """No `event` within `within` of the last one (a proactive trigger), then again every
    `within` while none comes."""

    kind: Literal["event-missing"]
    event: str
    resource: str
    within: Annotated[timedelta, BeforeValidator(lambda v: parse_duration(v))]


Alert = Annotated[FlowRunFailed | EventMissing, Field(discriminator="kind")]


class Definitions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alerts: list[Alert]


def load_definitions(path: Path = DEFINITIONS) -> list[FlowRunFailed | EventMissing]:
    """The alerts of the definitions file; a UsageError names what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        alerts = Definitions.model_validate(data).alerts
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(f"{path}: {problems}") from None
    names = [a.name for a in alerts]
    if len(set(names)) != len(names):
        raise UsageError(f"{path}: alert names must be unique, got {names}")
    return alerts


def _raw(text: str) -> str:
    """Operator text inside a server-rendered Jinja template, taken literally."""
    return "{% raw %}" + text + "{% endraw %}" if text else ""


def message(alert: FlowRunFailed | EventMissing, ui_url: str | None = None) -> tuple[str, str]:
    """(subject, body): Jinja templates the Prefect server renders when the alert fires.
    `ui_url` (the Prefect UI as clients reach it) makes the links; the server may not know it."""
    subject = f"spectron-backup ALERT: {alert.name}"
    if isinstance(alert, FlowRunFailed):
        link = (
            f"{ui_url}/runs/flow-run/{{{{ flow_run.id }}}}" if ui_url else "{{ flow_run|ui_url }}"
        )
        body = (
            "Flow run {{ flow_run.name }} of {{ flow.name }}"
            "{% if deployment %} (deployment {{ flow.name }}/{{ deployment.name }}){% endif %}"
            " ended {{ flow_run.state.name }}: {{ flow_run.state.message }}\n"
            f"{_raw(alert.meaning)}\n"
            f"Flow run: {link}"
        )
    else:
        body = (
            f"No {alert.event} event in {format_duration(alert.within)}. "
            "{% if event %}The last one: {{ event.resource.name or event.resource.id }}"
            " at {{ event.occurred }}.{% else %}None since the previous alert (or since the"
            " automation was applied).{% endif %}\n"
            f"{_raw(alert.meaning)}"
        )
        if ui_url:
            body += f"\nDeployments: {ui_url}/deployments"
    return subject, body


def build_automation(
    alert: FlowRunFailed | EventMissing, block_document_id: Any, ui_url: str | None = None
) -> Any:
    """The Prefect automation of one alert, notifying through the given block."""
    from prefect.automations import AutomationCore, EventTrigger, Posture, SendNotification

    if isinstance(alert, FlowRunFailed):
        trigger = EventTrigger(
            posture=Posture.Reactive,
            expect={f"prefect.flow-run.{state}" for state in alert.states},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": alert.flow},
            threshold=1,
            within=timedelta(0),
        )
        description = f"A run of the flow {alert.flow} ends {' or '.join(alert.states)}."
    else:
        # `after` and `expect` the same event: every event restarts the window, so this fires
        # `within` after the last one; while the silence lasts, the server opens a new window
        # and fires again every `within` (a daily reminder for 26h).
        trigger = EventTrigger(
            posture=Posture.Proactive,
            after={alert.event},
            expect={alert.event},
            match={"prefect.resource.id": alert.resource},
            threshold=1,
            within=alert.within,
        )
        description = f"No {alert.event} event in {format_duration(alert.within)}."
    subject, body = message(alert, ui_url)
    return AutomationCore(
        name=PREFIX + alert.name,
        description=f"{description} {alert.meaning}".strip(),
        enabled=True,
        trigger=trigger,
        actions=[SendNotification(block_document_id=block_document_id, subject=subject, body=body)],
    )


def webhook_block(url: SecretStr) -> Any:
    """A Custom Webhook notification block posting `{"text": ...}` (Slack-compatible JSON);
    the URL is a secret of the block, substituted only when it posts."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    return CustomWebhookNotificationBlock(
        name="spectron-backup",
        url="{{webhook_url}}",
        method="POST",
        json_data={"text": "*{{subject}}*\n{{body}}"},
        headers={"Content-Type": "application/json"},
        secrets={"webhook_url": url.get_secret_value()},
    )


def apply_automations(
    config: Config,
    alerts: list[FlowRunFailed | EventMissing] | None = None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Make the server's `spectron-backup: *` automations and the webhook block match
    `alerts` (default: the definitions file). Without `alerts.webhook_url` nothing can be
    sent, so nothing is changed and the report says so."""
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    alerts = load_definitions() if alerts is None else alerts
    ui_url = (get_current_settings().ui_url or "").rstrip("/") or None
    report: dict[str, Any] = {
        "block": BLOCK_NAME,
        "created": [],
        "updated": [],
        "unchanged": [],
        "deleted": [],
        "dry_run": dry_run,
        "skipped": None,
    }
    if config.alerts.webhook_url is None:
        report["skipped"] = "alerts.webhook_url is not set: no alert automations applied"
        return report
    block = webhook_block(config.alerts.webhook_url)
    with get_client(sync_client=True) as client:
        if dry_run:
            block_id = _existing_block_id(client, block) or UUID(int=0)
        else:
            block_id = block.save(BLOCK_NAME, overwrite=True)
        existing: dict[str, list[Any]] = {}
        for automation in client.read_automations():
            if automation.name.startswith(PREFIX):
                existing.setdefault(automation.name, []).append(automation)
        for alert in alerts:
            wanted = build_automation(alert, block_id, ui_url)
            found = existing.pop(wanted.name, [])
            if found and _same(found[0], wanted):
                # Left alone: an update would reset the trigger's window (and so disarm the
                # missing-event alert until the next event).
                report["unchanged"].append(wanted.name)
            elif found:
                report["updated"].append(wanted.name)
                if not dry_run:
                    client.update_automation(found[0].id, wanted)
                for duplicate in found[1:]:
                    report["deleted"].append(duplicate.name)
                    if not dry_run:
                        client.delete_automation(duplicate.id)
            else:
                report["created"].append(wanted.name)
                if not dry_run:
                    client.create_automation(wanted)
        for name, stale in existing.items():
            for automation in stale:
                report["deleted"].append(name)
                if not dry_run:
                    client.delete_automation(automation.id)
    return report


def _same(existing: Any, wanted: Any) -> bool:
    from prefect.automations import AutomationCore

    core = AutomationCore.model_validate(existing.model_dump(exclude={"id"}))
    return core.model_dump() == wanted.model_dump()  # python mode: sets compare as sets


def _existing_block_id(client: Any, block: Any) -> UUID | None:
    from prefect.exceptions import ObjectNotFound

    try:
        document = client.read_block_document_by_name(
            BLOCK_NAME, block_type_slug=block.get_block_type_slug(), include_secrets=False
        )
    except ObjectNotFound:
        return None
    return document.id


def api_url() -> str:
    """The Prefect API this process talks to; a UsageError when it is not a real server (an
    ephemeral one would vanish with this process, and the automations with it)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise UsageError(
            "PREFECT_API_URL is not set: point it at the Prefect server, for example "
            "http://127.0.0.1:4200/api (`make server` starts one there)"
        )
    return url.rstrip("/")


def check_server(url: str) -> None:
    import httpx

    try:
        response = httpx.get(f"{url}/health", timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise UsageError(
            f"no Prefect server answers at {url} ({type(exc).__name__}): start one "
            "(`make server`) or fix PREFECT_API_URL"
        ) from None


def failure(exc: BaseException, config: Config) -> str:
    """An exception as one line, with the webhook URL (a secret) cut out of it."""
    return scrub(f"{type(exc).__name__}: {exc}".splitlines()[0][:500], config.alerts.webhook_url)


def show_report(report: dict[str, Any]) -> None:
    if report["skipped"]:
        err.print(f"[yellow]warning:[/] {report['skipped']}")
        return
    dry = " (dry run: nothing changed)" if report["dry_run"] else ""
    for key in ("created", "updated", "unchanged", "deleted"):
        for name in report[key]:
            err.print(f"automation {name!r}: {key}{dry}")
    err.print(f"alerts go through the notification block {report['block']!r}")


@reports_errors
def command(
    config: ConfigPath = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    json_output: JsonOutput = False,
) -> None:
    """Apply the alert automations of deployments/automations.yaml to the Prefect server."""
    settings = load_config(config)
    alerts = load_definitions()
    url = api_url()
    check_server(url)
    try:
        report = apply_automations(settings, alerts, dry_run=dry_run)
    except UsageError:
        raise
    except Exception as exc:
        raise OperationFailed(
            f"applying the automations to {url} failed: {failure(exc, settings)}"
        ) from None
    if json_output:
        print_json(report)
    else:
        show_report(report)


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(command)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
