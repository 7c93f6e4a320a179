"""Alerts to a webhook that takes Slack-compatible JSON (`{"text": ..., "blocks": [...]}`).

The webhook URL is a credential (a Slack incoming-webhook URL lets anyone post to the
channel): it is a SecretStr, and it never appears in a message, a log line or an exception.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import SecretStr

from spectron_backup.errors import OperationFailed

#: Slack truncates a section's text at 3000 characters
_SECTION_LIMIT = 2900


class AlertFailed(OperationFailed):
    """The webhook could not be reached or refused the message (its URL is never named)."""


def post_webhook(url: SecretStr, payload: dict[str, Any], timeout: float = 10) -> None:
    """POST `payload` as JSON to the webhook. Raises AlertFailed (without the URL) when the
    webhook cannot be reached or answers with an error status."""
    secret = url.get_secret_value()
    if not secret.startswith(("https://", "http://")):
        raise AlertFailed("alerts.webhook_url is not an http(s) URL")
    request = urllib.request.Request(
        secret,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "spectron-backup"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise AlertFailed(
            f"the alert webhook answered HTTP {exc.code} {scrub(str(exc.reason), secret)}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertFailed(
            f"the alert webhook could not be reached: {scrub(str(reason), secret)}"
        ) from None


def scrub(text: str, secret: str | SecretStr | None) -> str:
    """`text` with the secret (a webhook URL, say) cut out of it."""
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    return text.replace(secret, "***") if secret else text


def failure_message(
    title: str,
    failures: list[str],
    flow_run: str | None = None,
    *,
    url: str | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    """The Slack-compatible message of a failed flow run: `title`, the reasons, and the flow
    run (`flow_run` its id, `url` its page in the Prefect UI; either may be None)."""
    shown = failures[:limit] or ["(no reason recorded)"]
    more = len(failures) - len(shown)
    lines = [f"• {_clip(f, 400)}" for f in shown]
    if more > 0:
        lines.append(f"• ... and {more} more")
    if url:
        title += f" (flow run <{url}|{flow_run or 'in the Prefect UI'}>)"
    elif flow_run:
        title += f" (flow run {flow_run})"
    return {
        "text": title + "\n" + "\n".join(lines),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_clip(title, 2000)}*"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), _SECTION_LIMIT)},
            },
        ],
    }


def drill_alert_title(backup_id: str | None) -> str:
    which = f"backup `{backup_id}`" if backup_id else "no backup could be chosen"
    return f":rotating_light: Spectron restore drill FAILED: {which}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
