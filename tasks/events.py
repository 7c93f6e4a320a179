"""The events the flows emit: `spectron.<subject>.<outcome>` about resource
`spectron.<subject>[.<name>]`, the shape the automations of deployments/automations.yaml
match on (for example `spectron.backup.completed` from `spectron.backup.*`)."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event


def emit_spectron_event(
    subject: str, outcome: str, payload: dict[str, Any], name: str | None = None
) -> None:
    resource = {"prefect.resource.id": f"spectron.{subject}" + (f".{name}" if name else "")}
    if name:
        resource["prefect.resource.name"] = name
    emit_event(event=f"spectron.{subject}.{outcome}", resource=resource, payload=payload)
