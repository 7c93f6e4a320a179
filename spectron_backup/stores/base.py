"""The storage interface every backup target implements, in the manner of restic's backends.

A store holds objects named by keys: '/'-separated paths relative to the store's root or
prefix (`backups/<id>/manifest.json`). It can stream an object in (`writer`), stream one out
(`reader`), describe one (`head`), list them (`list`) and delete one (`delete`). Everything
else (manifests, retention, drills) is built on top of these few calls and never sees a
filesystem path or an S3 request.

Keys are checked the same way by every store, so that a key valid on one target is valid on
all: no empty, `.` or `..` components, no leading '/', no backslash or control character, no
component beginning with '.' (those names are the stores' own: temporary files, staging) and
no key ending in `.meta.json` (the file store's metadata sidecars).

User metadata is a small dict of strings kept with the object (for example the sha256 of its
bytes). Its keys must be lowercase `[a-z0-9-]` (S3 lowercases them and proxies drop
underscores from header names) and its values printable ASCII, at most 2 KiB in all (S3's
limit).
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, NamedTuple

from spectron_backup.errors import OperationFailed, UsageError

__all__ = [
    "METADATA_SUFFIX",
    "EndpointUnreachable",
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectWriter",
    "Store",
    "StoreError",
    "TransientStoreError",
    "validate_key",
    "validate_metadata",
    "validate_prefix",
]

#: Suffix of the file store's metadata sidecars; no key may end with it.
METADATA_SUFFIX = ".meta.json"

#: S3's limit on the user metadata of one object (keys plus values, in bytes).
MAX_METADATA_BYTES = 2048

_METADATA_KEY = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*\Z")
_BAD_KEY_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class StoreError(OperationFailed):
    """A store operation failed (exit status 1)."""


class TransientStoreError(StoreError):
    """A failure that may pass if retried: connection reset or refused, timeout, S3 5xx,
    throttling (SlowDown). The store has already retried a few times; callers may retry the
    whole operation (for example a whole upload) later."""

    transient = True


class EndpointUnreachable(TransientStoreError):
    """No connection to the store's endpoint could be made (refused, unknown host, connect
    timeout): exit status 2 on the command line, like an unreachable SurrealDB, since the
    operator must check the address or the server; retried by scheduled runs all the same."""

    exit_code = 2


class ObjectNotFound(StoreError):
    """The object does not exist (raised by `reader` and `get_bytes`; `head` returns None)."""

    def __init__(self, url: str) -> None:
        super().__init__(f"{url}: no such object")
        self.url = url


class InvalidKey(UsageError, ValueError):
    """A key or metadata that no store accepts (exit status 2)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object."""

    key: str
    """Relative to the store's root or prefix, '/'-separated."""
    size: int
    modified: datetime
    """Time of the last write, timezone-aware UTC."""
    metadata: dict[str, str] = field(default_factory=dict)
    """User metadata; `{}` in the results of `list()` (which would need a request per object
    on S3): use `head()` for it."""


def validate_key(key: str) -> str:
    """`key` if every store accepts it, else InvalidKey."""
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"invalid object key {key!r}: empty")
    if _BAD_KEY_CHARS.search(key):
        raise InvalidKey(f"invalid object key {key!r}: control character or backslash")
    if key.startswith("/") or key.endswith("/"):
        raise InvalidKey(f"invalid object key {key!r}: leading or trailing '/'")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(f"invalid object key {key!r}: empty, '.' or '..' component")
        if part.startswith("."):
            raise InvalidKey(
                f"invalid object key {key!r}: components beginning with '.' are reserved"
            )
    if key.endswith(METADATA_SUFFIX):
        raise InvalidKey(f"invalid object key {key!r}: the suffix {METADATA_SUFFIX} is reserved")
    if len(key.encode("utf-8")) > 900:
        raise InvalidKey(f"invalid object key {key[:40]!r}...: longer than 900 bytes")
    return key


def validate_prefix(prefix: str) -> str:
    """A `list()` prefix: any string a key could start with ('' lists everything)."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"invalid prefix {prefix!r}")
    if prefix.startswith("/") or _BAD_KEY_CHARS.search(prefix):
        raise InvalidKey(f"invalid prefix {prefix!r}")
    # Every complete component (all but the last, which may be partial) must be a key's.
    if any(part in ("", ".", "..") for part in prefix.split("/")[:-1]):
        raise InvalidKey(f"invalid prefix {prefix!r}: empty, '.' or '..' component")
    return prefix


def validate_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """A copy of `metadata` if every store can keep it, else InvalidKey."""
    if not metadata:
        return {}
    out: dict[str, str] = {}
    total = 0
    for name, value in metadata.items():
        if not isinstance(name, str) or not _METADATA_KEY.match(name):
            raise InvalidKey(f"invalid metadata name {name!r}: use lowercase [a-z0-9-]")
        if not isinstance(value, str) or not _PRINTABLE_ASCII.match(value):
            raise InvalidKey(f"invalid metadata value for {name!r}: use printable ASCII")
        total += len(name) + len(value)
        out[name] = value
    if total > MAX_METADATA_BYTES:
        raise InvalidKey(f"metadata of {total} bytes is over the limit of {MAX_METADATA_BYTES}")
    return out


class ObjectWriter(io.RawIOBase):
    """The binary file a store's `writer()` yields.

    Write bytes to it; the object is committed when the `with` block ends normally and
    discarded if it raises. `metadata` may be updated until then (a digest of the content is
    known only after its last byte). Closing it inside the block (as a compressor's
    stream_writer may) is harmless: commit happens at the end of the block.
    """

    def __init__(self, metadata: dict[str, str] | None = None) -> None:
        super().__init__()
        self.metadata: dict[str, str] = dict(metadata or {})
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.bytes_written

    def write(self, data) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed object writer")
        view = memoryview(data).cast("B")
        n = len(view)
        if n:
            self._write(view)
            self.bytes_written += n
        return n

    @abstractmethod
    def _write(self, view: memoryview) -> None: ...


class Store(ABC):
    """A backup target. Implementations: FileStore (`file:///path`), S3Store (`s3://b/p`)."""

    url: str
    """Display URL of the store's root: never contains a secret."""
    setting: str = "target"
    """What the operator calls this store's URL (`target`, `--documents`): messages name it."""

    def key_url(self, key: str) -> str:
        """Display URL of one object, for messages."""
        return f"{self.url.rstrip('/')}/{key}"

    @abstractmethod
    def writer(
        self, key: str, *, metadata: dict[str, str] | None = None
    ) -> AbstractContextManager[ObjectWriter]:
        """A streaming upload. On normal exit of the block the object appears, atomically
        and with the metadata (the yielded writer's `.metadata`, which the block may update);
        if the block raises, nothing appears and the exception propagates."""

    def put_bytes(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None) -> None:
        """Store a small object in one piece."""
        with self.writer(key, metadata=metadata) as out:
            out.write(data)

    @abstractmethod
    def reader(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A streaming read of the object; ObjectNotFound (on entering) if there is none."""

    def get_bytes(self, key: str) -> bytes:
        """The whole object; ObjectNotFound if there is none."""
        with self.reader(key) as src:
            return src.read()

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size, time and metadata of the object, or None if there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (a plain string prefix, not only a
        directory), recursively, sorted by key (code point order, which is S3's UTF-8 byte
        order), fetched lazily page by page. `metadata` is `{}` in the results."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; nothing happens if there is none."""

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def lock_until(self, key: str) -> datetime | None:
        """Until when the store refuses to really delete the object (S3 Object Lock), or
        None if nothing protects it (or there is no such object). A protection without an
        end (a legal hold) is `datetime.max` in UTC. The date may be past: compare it with
        the present. Stores without such locks (the file store) always answer None."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the store must not be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class PendingUpload(NamedTuple):
    """A write that was started and neither completed nor aborted: an S3 multipart upload, or
    a file store's temporary file. `upload_id` names it for `abort_multipart_upload`."""

    key: str
    upload_id: str
    initiated: datetime
    #: when it last wrote (S3: its newest part), where that was asked; else `initiated`
    last_written: datetime | None = None

    @property
    def active_at(self) -> datetime:
        """The last sign of life: an upload that has run for hours is still writing."""
        return self.last_written or self.initiated
