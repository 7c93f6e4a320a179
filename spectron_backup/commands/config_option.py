"""The `--config` option shared by the commands that read the configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="SPECTRON_BACKUP_CONFIG",
        help="Configuration file (YAML).",
        show_default=False,
    ),
]
