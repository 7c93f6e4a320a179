"""Showing a URL an operator typed without the secrets they may have typed into it."""

from __future__ import annotations

import re

#: `user:password@` at the start or after a `/`, a space or a quote; the password may hold `:`.
_USERINFO = re.compile(r"(^|/|\s|['\"(])([^/:?#@\s'\"]*):[^/?#\s'\"]*@")


def redact_url(url: str) -> str:
    """`url` without the password of a `user:password@` (the user is kept) and without its
    query (tokens travel there). Never raises: it runs on the very input that was refused,
    however malformed (`ws://u:p@host:notaport`, `u:p@host`, `ws:/u:p@host`)."""
    text = redact_text(str(url))
    if "?" in text:
        text = text.split("?", 1)[0] + "?…"
    return text


def redact_text(text: str) -> str:
    """A message with the password of every `user:password@` in it removed (a library's own
    message may quote a URL whole: botocore's "Could not connect to the endpoint URL")."""
    return _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}@", text)


def secret_free_url(url: str | None, option: str, instead: str) -> str | None:
    """`url` if it carries no password and no query; else a UsageError saying where the
    secret belongs. For URLs that are stored in the clear (a Prefect flow run's parameters)."""
    from spectron_backup.errors import UsageError

    if url is not None and redact_url(url) != url:
        raise UsageError(
            f"{option} {redact_url(url)!r}: no password or token in this URL (it would be "
            f"stored with the flow run, in the clear); give it as {instead}"
        )
    return url
