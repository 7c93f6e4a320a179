"""Order-independent content hash of a table.

The hash of a table is the sum, modulo 2**256, of the sha256 digests of its records'
``<string>`` texts. Addition commutes, so a restored table can be checked against the
manifest without sorting its records, and records can be hashed as they stream by.
"""

import hashlib

_MOD = 1 << 256


class TableHasher:
    """Accumulates the count and order-independent hash of a stream of record texts."""

    __slots__ = ("_sum", "count")

    def __init__(self) -> None:
        self._sum = 0
        self.count = 0

    def add(self, record_text: str) -> None:
        self.add_utf8(record_text.encode("utf-8"))

    def add_utf8(self, record_text: bytes) -> None:
        """`add` for text already encoded as UTF-8 (as the exporter reads it)."""
        self._sum += int.from_bytes(hashlib.sha256(record_text).digest(), "big")
        self.count += 1

    def hexdigest(self) -> str:
        return f"{self._sum % _MOD:064x}"


def table_hash(record_texts: "list[str] | tuple[str, ...]") -> str:
    """The hash of a whole (small) collection of record texts."""
    hasher = TableHasher()
    for text in record_texts:
        hasher.add(text)
    return hasher.hexdigest()
