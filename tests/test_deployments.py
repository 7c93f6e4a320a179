"""prefect.yaml, the alert definitions and the example configuration, checked without a server
(tests/e2e/test_prefect_server.py deploys them on a real one): every flow has its deployment,
schedules and limits are what the README promises, forms get typed parameters, every alert
points at a real flow or event, and the example configuration is complete and valid."""

from __future__ import annotations

import importlib
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from deployments.automations import (
    BLOCK_NAME,
    PREFIX,
    EventMissing,
    FlowRunFailed,
    build_automation,
    failure,
    load_definitions,
    message,
    webhook_block,
)
from deployments.deploy import deployments_of, work_pools_of
from spectron_backup.config import Config, load_config
from spectron_backup.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deployments" / "config.example.yaml"


def project_flows() -> dict[str, object]:
    """Every Prefect flow defined in flows/*.py, by entrypoint (`flows/x.py:function`)."""
    from prefect import Flow

    found = {}
    for path in sorted((ROOT / "flows").glob("*.py")):
        module = importlib.import_module(f"flows.{path.stem}")
        for name, value in vars(module).items():
            if isinstance(value, Flow) and value.fn.__module__ == module.__name__:
                found[f"flows/{path.name}:{name}"] = value
    return found


@pytest.fixture(scope="module")
def deployments() -> dict[str, dict]:
    entries = deployments_of()
    return {entry["entrypoint"]: entry for entry in entries}


def test_every_flow_has_exactly_one_deployment(deployments: dict[str, dict]) -> None:
    entrypoints = [entry["entrypoint"] for entry in deployments_of()]
    assert len(entrypoints) == len(set(entrypoints))
    flows = project_flows()
    missing = sorted(set(flows) - set(entrypoints))
    assert not missing, f"flows without a deployment in prefect.yaml: {missing}"
    assert set(entrypoints) <= set(flows), "a deployment's entrypoint is not a flow"


def test_schedules_are_the_documented_ones_in_utc(deployments: dict[str, dict]) -> None:
    crons = {
        entrypoint: [(s["cron"], s["timezone"]) for s in entry.get("schedules") or []]
        for entrypoint, entry in deployments.items()
    }
    assert crons["flows/backup.py:backup"] == [("0 2 * * *", "UTC")]
    assert crons["flows/drill.py:restore_drill"] == [("0 5 * * *", "UTC")]
    assert crons["flows/expire.py:expire_sweep"] == [("0 * * * *", "UTC")]
    assert crons["flows/bucket_guard.py:bucket_guard"] == [("0 1 * * *", "UTC")]
    assert crons["flows/prune.py:prune"] == []


def test_one_run_at_a_time_on_the_process_pool(deployments: dict[str, dict]) -> None:
    for entrypoint, entry in deployments.items():
        assert entry["concurrency_limit"]["limit"] == 1, entrypoint
        assert entry["concurrency_limit"]["collision_strategy"] in ("ENQUEUE", "CANCEL_NEW")
    assert work_pools_of(list(deployments.values())) == ["spectron-backup"]


def test_runs_start_in_the_project_directory() -> None:
    data = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [build] = data["build"]
    script = build["prefect.deployments.steps.run_shell_script"]
    assert (script["id"], script["script"]) == ("project-dir", "pwd")
    [pull] = data["pull"]
    assert pull == {
        "prefect.deployments.steps.set_working_directory": {"directory": "{{ project-dir.stdout }}"}
    }


def test_prefect_reads_prefect_yaml_the_way_we_do() -> None:
    """Prefect's own model of prefect.yaml (what `prefect deploy` validates) accepts the file."""
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(yaml.safe_load((ROOT / "prefect.yaml").read_text()))
    assert {d.entrypoint for d in model.deployments} == set(project_flows())
    assert all(d.concurrency_limit.limit == 1 for d in model.deployments)


def test_parameters_are_typed_and_described_for_the_forms() -> None:
    from prefect.utilities.callables import parameter_schema

    for entrypoint, flow in project_flows().items():
        schema = parameter_schema(flow.fn).model_dump()
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{entrypoint}: parameter {name} has no description"
            assert "type" in prop or "anyOf" in prop, f"{entrypoint}: {name} is untyped"
        assert "config_path" in schema["properties"], entrypoint
        assert schema.get("required", []) == [], f"{entrypoint}: a scheduled run passes nothing"
    flows = project_flows()
    backup = parameter_schema(flows["flows/backup.py:backup"].fn).model_dump()
    assert backup["properties"]["tier"]["enum"] == ["auto", "daily", "weekly"]
    drill = parameter_schema(flows["flows/drill.py:restore_drill"].fn).model_dump()
    [choice, _] = drill["properties"]["backup"]["anyOf"]
    assert choice["pattern"].startswith("^(latest|random|")


# -- alerts -----------------------------------------------------------------------------------


def test_alert_definitions_cover_the_failures_the_design_names() -> None:
    alerts = load_definitions()
    failed = {a.flow: a for a in alerts if isinstance(a, FlowRunFailed)}
    assert set(failed) >= {"backup", "restore-drill", "expire-sweep"}
    for alert in failed.values():
        assert {"Failed", "Crashed"} <= set(alert.states)
        assert alert.meaning
    flow_names = {flow.name for flow in project_flows().values()}
    assert set(failed) <= flow_names, "an alert names a flow that does not exist"
    [missing] = [a for a in alerts if isinstance(a, EventMissing)]
    assert (missing.event, missing.within) == ("spectron.backup.completed", timedelta(hours=26))
    # that a real backup emits this event is checked against the Prefect API in
    # tests/test_backup_flow.py, and the alert firing after silence in tests/e2e


def test_automations_are_prefect_triggers_with_valid_templates() -> None:
    from prefect.server.events.actions import SendNotification as ServerSendNotification

    block_id = uuid.uuid4()
    for alert in load_definitions():
        automation = build_automation(alert, block_id, "http://127.0.0.1:4200")
        assert automation.name == PREFIX + alert.name
        [action] = automation.actions
        assert action.block_document_id == block_id
        # the server refuses templates it cannot render; this is its own validation
        ServerSendNotification(block_document_id=block_id, subject=action.subject, body=action.body)
        trigger = automation.trigger
        if isinstance(alert, FlowRunFailed):
            assert trigger.posture == "Reactive"
            assert "prefect.flow-run.Failed" in trigger.expect
            assert trigger.match_related.get("prefect.resource.name") == [alert.flow]
            assert "http://127.0.0.1:4200/runs/flow-run/{{ flow_run.id }}" in action.body
        else:
            assert trigger.posture == "Proactive"
            assert trigger.after == trigger.expect == {alert.event}
            assert trigger.within == timedelta(hours=26)


def test_operator_text_is_not_a_template() -> None:
    alert = FlowRunFailed(kind="flow-run-failed", name="x", flow="backup", meaning="{{ oops }}")
    _, body = message(alert)
    assert "{% raw %}{{ oops }}{% endraw %}" in body


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alerts:\n  - {name: a, kind: flow-run-failed}\n", "flow"),
        ("alerts:\n  - {name: a, kind: sometimes, flow: backup}\n", "kind"),
        (
            "alerts:\n  - {name: a, kind: event-missing, event: e, resource: r, within: 26}\n",
            "no unit",
        ),
        (
            "alerts:\n  - {name: a, kind: flow-run-failed, flow: backup}\n"
            "  - {name: a, kind: flow-run-failed, flow: prune}\n",
            "unique",
        ),
        ("alerts:\n  - {name: a, kind: flow-run-failed, flow: backup, when: now}\n", "when"),
    ],
)
def test_a_bad_definition_is_refused_naming_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "automations.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=problem) as raised:
        load_definitions(path)
    assert str(path) in str(raised.value)


def test_the_webhook_block_keeps_the_url_secret() -> None:
    secret = "T0/B0/never-shown-7c1e"
    block = webhook_block(SecretStr(f"https://hooks.example.com/services/{secret}"))
    for text in (repr(block), str(block), block.model_dump_json(), str(block.model_dump())):
        assert secret not in text
    assert block.url == "{{webhook_url}}"
    assert block.json_data == {"text": "*{{subject}}*\n{{body}}"}
    assert BLOCK_NAME == "spectron-backup-alerts"


def test_a_failure_to_apply_is_reported_without_the_webhook_url(tmp_path: Path) -> None:
    url = "https://hooks.example.com/services/T0/B0/never-shown-2d9a"
    config = tmp_path / "config.yaml"
    config.write_text("source: {url: 'mem://'}\ntarget: {url: 'file:///tmp/x'}\n")
    settings = load_config(config, overrides={"alerts.webhook_url": url})
    text = failure(ValueError(f"bad block: url={url}\nmore"), settings)
    assert text == "ValueError: bad block: url=***"


# -- the example configuration ----------------------------------------------------------------


def test_the_example_configuration_is_complete_and_valid() -> None:
    config = load_config(EXAMPLE)
    sections = set(yaml.safe_load(EXAMPLE.read_text()))
    assert sections == set(Config.model_fields), "the example lacks or invents a section"
    assert config.alerts.webhook_url is None  # a secret: given through the environment
    assert config.policies() is not None
    assert len(config.retention) == 2


def test_the_example_takes_its_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPECTRON_BACKUP__ALERTS__WEBHOOK_URL", "https://hooks.example.com/x")
    monkeypatch.setenv("SPECTRON_BACKUP__SOURCE__PASSWORD", "pw-not-in-files")
    config = load_config(EXAMPLE)
    assert config.alerts.webhook_url.get_secret_value() == "https://hooks.example.com/x"
    assert config.source.password.get_secret_value() == "pw-not-in-files"
    assert "pw-not-in-files" not in repr(config)
