"""Small writable streams that sit in a pipeline: count bytes, hash them, pass them on."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import zstandard

#: zstd level of the dumps this tool compresses (`backups.compression_level`, `export -o *.zst`)
DEFAULT_ZSTD_LEVEL = 3


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


@contextmanager
def zstd_writer(sink: IO[bytes], level: int = DEFAULT_ZSTD_LEVEL) -> Iterator[io.BufferedWriter]:
    """One zstd frame into `sink` (compressed on all cores, with its checksum, so `zstd -d`
    verifies it), written through a 1 MiB buffer whose `.raw.bytes` counts the plain bytes.
    The frame ends with the block; `sink` stays open."""
    compressor = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
    with compressor.stream_writer(sink, closefd=False) as compressed:
        buffered = io.BufferedWriter(CountingWriter(compressed), 1 << 20)
        yield buffered
        buffered.flush()
