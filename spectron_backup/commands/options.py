"""Options shared by the commands that talk to SurrealDB."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from pydantic import SecretStr
from rich.markup import escape

from spectron_backup.console import err
from spectron_backup.errors import SpectronBackupError
from spectron_backup.surreal import Credentials
from spectron_backup.urls import redact_text

Namespace = Annotated[str, typer.Option("--ns", help="Namespace.", show_default=False)]
Database = Annotated[str, typer.Option("--db", help="Database.", show_default=False)]
Username = Annotated[
    str | None,
    typer.Option(
        "--username", "-u", envvar="SURREAL_USER", help="User to sign in as (remote servers)."
    ),
]
Password = Annotated[
    str | None,
    typer.Option(
        "--password",
        "-p",
        envvar="SURREAL_PASS",
        help="Password; prefer the SURREAL_PASS variable.",
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="SURREAL_TOKEN",
        help="Token instead of user/password.",
        show_default=False,
    ),
]
AuthLevel = Annotated[
    str | None,
    typer.Option(
        "--auth-ns",
        help="Namespace the user is defined in (default: a root user).",
        show_default=False,
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def credentials(
    username: str | None, password: str | None, token: str | None, auth_ns: str | None = None
) -> Credentials:
    return Credentials(
        username=username,
        password=SecretStr(password) if password else None,
        token=SecretStr(token) if token else None,
        auth_namespace=auth_ns,
    )


F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn the tool's errors into one line on stderr and the exit status they carry."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpectronBackupError as exc:
            # escape: a message may quote a key or URL with brackets (`s3://b/report[1].pdf`)
            message = escape(redact_text(str(exc)))
            err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def run_app(app: typer.Typer) -> None:
    """Run a command-line app of this project: with Prefect's telemetry off (its server would
    otherwise call out on every start) unless the environment says otherwise."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    app()
