"""Write files so that a reader sees the whole file or none of it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from spectron_backup.errors import UsageError


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")


@contextmanager
def atomic_binary_writer(path: Path) -> Iterator[IO[bytes]]:
    """A binary file at a temporary name, renamed to `path` only if the block succeeds."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: directory {path.parent} does not exist")
    if path.is_dir():  # found now, not by the rename after all the work
        raise UsageError(f"cannot write {path}: it is a directory; name a file in it")
    tmp = temporary_name(path)
    try:
        fp = open(tmp, "wb")  # noqa: SIM115 - closed below, before the rename
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        yield fp
        fp.flush()
        os.fsync(fp.fileno())
        fp.close()
        os.replace(tmp, path)
    except BaseException:
        fp.close()
        tmp.unlink(missing_ok=True)
        raise
