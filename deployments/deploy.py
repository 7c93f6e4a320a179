"""`make deploy`: everything a Prefect server needs to run spectron-backup on schedule.

    python -m deployments.deploy [--config F]

1. checks the configuration and that a Prefect server answers at PREFECT_API_URL;
2. creates the process work pool(s) named in prefect.yaml, when missing (an existing pool is
   left as it is, with any concurrency or settings the operator gave it);
3. deploys every entry of prefect.yaml (`prefect --no-prompt deploy --all`);
4. applies the alert automations (deployments/automations.py);
5. prints how to start a worker and where the UI is.

Every step is idempotent: run it again after changing prefect.yaml, the alerts or the webhook.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
import yaml

from deployments.automations import (
    api_url,
    apply_automations,
    check_server,
    failure,
    show_report,
)
from spectron_backup.commands.config_option import ConfigPath
from spectron_backup.commands.options import reports_errors, run_app
from spectron_backup.config import CONFIG_ENV, load_config
from spectron_backup.console import err
from spectron_backup.errors import OperationFailed, UsageError

ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = ROOT / "prefect.yaml"


def deployments_of(path: Path = PREFECT_YAML) -> list[dict[str, Any]]:
    """The `deployments:` entries of prefect.yaml (YAML anchors and merge keys resolved)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return list(data.get("deployments") or [])


def work_pools_of(deployments: list[dict[str, Any]]) -> list[str]:
    pools = {d.get("work_pool", {}).get("name") for d in deployments}
    if None in pools:
        raise UsageError(f"{PREFECT_YAML}: every deployment needs work_pool.name")
    return sorted(pools)


def ensure_work_pool(name: str) -> bool:
    """Create the process work pool `name` unless it exists; True when created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=ProcessWorker.type,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="spectron-backup: backups, restore drills, expire sweeps",
                )
            )
            return True
    if pool.type != ProcessWorker.type:
        raise UsageError(
            f"work pool {name!r} exists with type {pool.type!r}; spectron-backup needs a "
            "process pool: rename it in prefect.yaml or delete that pool"
        )
    return False


def prefect_deploy() -> list[str]:
    """`prefect --no-prompt deploy --all` in the project directory: the `flow/deployment` names
    it reports as created or updated; its whole output only on failure."""
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise OperationFailed(f"`prefect deploy --all` failed (exit {result.returncode}):\n{tail}")
    text = " ".join(result.stdout.split())  # rich wraps its panels
    return re.findall(r"Deployment '([^']+)' successfully (?:created|updated)", text)


def ui_of(api: str) -> str:
    return api.removesuffix("/api")


@reports_errors
def command(config: ConfigPath = None) -> None:
    """Create the work pool, deploy every flow of prefect.yaml and apply the alert automations."""
    if config is None:
        raise UsageError(
            f"no configuration: pass --config FILE or set {CONFIG_ENV} (the webhook of the "
            "alerts comes from it, and the worker will need the same file)"
        )
    settings = load_config(config)
    url = api_url()
    check_server(url)
    deployments = deployments_of()
    for pool in work_pools_of(deployments):
        created = ensure_work_pool(pool)
        err.print(f"work pool {pool!r} {'created' if created else 'exists'}")
    names = prefect_deploy()
    err.print(f"deployed from prefect.yaml: {', '.join(names)}")
    try:
        report = apply_automations(settings)
    except (UsageError, OperationFailed):
        raise
    except Exception as exc:
        raise OperationFailed(
            f"applying the automations failed: {failure(exc, settings)}"
        ) from None
    show_report(report)
    pools = " ".join(f"--pool {shlex.quote(p)}" for p in work_pools_of(deployments))
    config_path = shlex.quote(str(Path(config).resolve()))
    prefect = shlex.quote(str(Path(sys.executable).parent / "prefect"))
    err.print(
        "\nStart a worker on this machine and keep it running (it runs the flows):\n"
        f"  cd {shlex.quote(str(ROOT))} && {CONFIG_ENV}={config_path} PREFECT_API_URL={url} \\\n"
        f"    {prefect} worker start {pools}\n"
        f"  (or: make worker CONFIG={config_path} API_URL={url})\n"
        f"Open the UI: {ui_of(url)}/deployments  (runs, artifacts, schedules; "
        f"alerts under {ui_of(url)}/automations)"
    )


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(command)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
