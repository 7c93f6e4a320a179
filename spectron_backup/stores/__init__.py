"""Backup targets: one small interface (`Store`), a local directory and S3 behind it.

store = open_store("s3://spectron-backups/prod", endpoint_url=None, sse="aws:kms")
with store.writer("backups/<id>/acme/prod.surql.zst") as out:
    ...                                  # out.write(chunk) as the data streams
    out.metadata["sha256"] = digest      # known only at the end: still allowed here
store.head("backups/<id>/acme/prod.surql.zst").metadata["sha256"]
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from spectron_backup.errors import UsageError
from spectron_backup.stores.base import (
    EndpointUnreachable,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectWriter,
    Store,
    StoreError,
    TransientStoreError,
    validate_key,
)
from spectron_backup.stores.file import FileStore
from spectron_backup.stores.s3 import PendingUpload, S3Store
from spectron_backup.urls import redact_url

__all__ = [
    "EndpointUnreachable",
    "FileStore",
    "InvalidKey",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectWriter",
    "PendingUpload",
    "S3Store",
    "Store",
    "StoreError",
    "TransientStoreError",
    "open_store",
    "open_target_store",
]


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    sse: str | None = None,
    kms_key_id: str | None = None,
    setting: str = "target",
    **options: Any,
) -> Store:
    """The store of a target URL: `file:///abs/path` or `s3://bucket[/prefix]`.

    `endpoint_url`, `region`, `sse` and `kms_key_id` are the `target` section of the
    configuration and apply to S3 only (`region` is ignored for files; the others are refused,
    so that encryption settings are never silently dropped). `setting` is what the operator
    calls this URL (`target`, `documents`, `--documents`): messages name it. `options` go to
    the store's constructor (S3: part_size, upload_concurrency, max_attempts,
    connect_timeout, read_timeout, copy_threshold). A bad URL is a UsageError.
    """
    if not isinstance(url, str) or "://" not in url:
        raise UsageError(
            f"invalid {setting} URL {redact_url(url)!r}: use file:///path or s3://bucket/prefix"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise UsageError(f"invalid {setting} URL {redact_url(url)!r}: no query or fragment allowed")
    if scheme == "file":
        for name, value in (
            ("endpoint_url", endpoint_url),
            ("sse", sse),
            ("kms_key_id", kms_key_id),
        ):
            if value:
                raise UsageError(f"target.{name} applies to s3:// targets only, not to {url}")
        if options:
            raise UsageError(f"unknown option(s) for a file target: {', '.join(sorted(options))}")
        if parts.netloc not in ("", "localhost"):
            raise UsageError(
                f"invalid {setting} URL {redact_url(url)!r}: "
                "use file:///absolute/path (three slashes)"
            )
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise UsageError(
                f"invalid {setting} URL {redact_url(url)!r}: the path must be absolute"
            )
        return FileStore(path, setting=setting)
    if scheme == "s3":
        bucket = parts.netloc
        if not bucket or "@" in bucket or ":" in bucket:
            raise UsageError(f"invalid {setting} URL {redact_url(url)!r}: use s3://bucket/prefix")
        prefix = unquote(parts.path).strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except InvalidKey as exc:
                raise UsageError(
                    f"invalid prefix in {setting} URL {redact_url(url)!r}: {exc}"
                ) from None
        return S3Store(
            bucket,
            prefix,
            endpoint_url=endpoint_url,
            region=region,
            sse=sse,
            kms_key_id=kms_key_id,
            setting=setting,
            **options,
        )
    raise UsageError(
        f"unsupported {setting} URL scheme {parts.scheme!r} in {redact_url(url)!r}: "
        "use file:// or s3://"
    )


def open_target_store(target: Any, *, must_exist: bool = False) -> Store:
    """The store of the configuration's `target` section (a `TargetConfig`).

    Commands that only read backups (list, prune, restore, drill) pass `must_exist`: a file
    target whose directory does not exist is then a UsageError naming it, not an empty list
    of backups (a typo in the path would otherwise look like "no backups"). The backup leaves
    it False: its first write creates the directory. An S3 target needs nothing more: listing
    a bucket that does not exist already fails, naming it.
    """
    options: dict[str, Any] = {}
    if target.url.startswith("s3://"):
        options["max_attempts"] = target.max_attempts
    store = open_store(
        target.url,
        endpoint_url=target.endpoint_url,
        region=target.region,
        sse=target.sse,
        kms_key_id=target.kms_key_id,
        **options,
    )
    if must_exist and isinstance(store, FileStore):
        store.require_root()
    return store
