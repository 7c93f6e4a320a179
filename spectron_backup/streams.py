"""Small writable streams that sit in a pipeline: count bytes, hash them, pass them on."""

from __future__ import annotations

import hashlib
import io
from typing import IO


class HashingWriter(io.RawIOBase):
    """Passes bytes to `sink`, keeping their sha256 and count (of what is stored)."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self._sha = hashlib.sha256()
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._sha.update(view)
        self._sink.write(view)
        self.bytes += len(view)
        return len(view)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class CountingWriter(io.RawIOBase):
    """Passes bytes to `sink`, counting them (the dump's size before compression)."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._sink.write(data)
        n = len(data)
        self.bytes += n
        return n
