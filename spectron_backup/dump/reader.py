"""Opening dump files, plain or zstd-compressed, and checking them before an import."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TextIO

from spectron_backup.dump.splitter import SplitError, iter_statements_from_file
from spectron_backup.errors import UsageError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def open_dump(path: Path) -> TextIO:
    """A text stream over a dump; zstd frames are decompressed as they are read.

    Newlines are kept as they are (2.x dumps may hold raw CR inside strings).
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise UsageError(f"dump file {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read dump file {path}: {exc.strerror}") from None
    if raw.read(4) == ZSTD_MAGIC:
        import zstandard

        raw.seek(0)
        stream = zstandard.ZstdDecompressor().stream_reader(
            raw, read_across_frames=True, closefd=True
        )
        return io.TextIOWrapper(io.BufferedReader(stream, 1 << 20), encoding="utf-8", newline="")  # type: ignore[arg-type]
    raw.seek(0)
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def validate_dump(path: Path, *, shown: str | None = None) -> int:
    """Read the whole dump once: it must be UTF-8 and tokenize to complete statements.

    Returns the number of statements. Raises UsageError naming the line of the problem, and
    the dump as `shown` (default: its path; `-` for stdin spooled to a file).
    """
    name = path if shown is None else shown
    count = 0
    last = None
    try:
        with open_dump(path) as fp:
            for last in iter_statements_from_file(fp):  # noqa: B007 - the last one is checked below
                count += 1
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"dump file {name} is not UTF-8 text ({exc.reason} at byte {exc.start}); is it a SurrealQL dump?"
        ) from None
    except SplitError as exc:
        raise UsageError(f"dump file {name} is truncated or malformed: {exc}") from None
    except Exception as exc:  # zstd errors: a damaged compressed file
        if type(exc).__module__.startswith("zstandard") or "zstd" in str(exc).lower():
            raise UsageError(f"dump file {name} is not a readable zstd stream: {exc}") from None
        raise
    if count == 0:
        raise UsageError(f"dump file {name} holds no SurrealQL statements")
    if last is not None and not last.terminated:
        raise UsageError(
            f"dump file {name} is truncated: it ends inside the statement that starts at line "
            f"{last.line} (no closing ';')"
        )
    return count
