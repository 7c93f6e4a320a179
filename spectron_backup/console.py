"""Where human output goes: stderr, with rich formatting on a terminal. Stdout is for data."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

err = Console(stderr=True, highlight=False)
if not err.is_terminal:
    # Logs and CI output: do not fold lines at rich's default 80 columns.
    err = Console(stderr=True, highlight=False, width=160, soft_wrap=True)


def print_json(document: Any) -> None:
    """The one JSON document of a `--json` run, on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def progress_bar(description: str):
    """A progress display on a terminal; on anything else, nothing (logs stay clean)."""
    if not err.is_terminal:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=None, status="")
        yield lambda status: progress.update(task, status=status)
