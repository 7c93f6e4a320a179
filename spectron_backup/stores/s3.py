"""A store in an S3 bucket (`s3://bucket/prefix`), on AWS or any S3-compatible endpoint.

Uploads (`writer`) stream with bounded memory: bytes fill one part buffer (16 MiB by
default); a full buffer is uploaded as a part of a multipart upload by a small thread pool
while the next one fills. At most `upload_concurrency` buffers exist at once (the one filling
plus those uploading), so memory stays near `upload_concurrency * part_size` whatever the size
of the object. An object smaller than one part is sent with a single PutObject. If the block
raises, the multipart upload is aborted (best effort: if the abort itself fails, for example
because the network is gone, the upload is left for `list_multipart_uploads` /
`abort_multipart_upload` to collect, and the original exception carries a note saying so).

Late metadata. S3 fixes an object's user metadata at CreateMultipartUpload, before the first
byte, and neither UploadPart nor CompleteMultipartUpload can change it; but a digest of the
content is known only after the last byte. There is no standard way around that: additional
checksums (ChecksumAlgorithm) are composite per part for SHA256 on multipart uploads, not a
digest of the whole object, and tagging is a different API that several S3-compatible
servers lack. So when the writer's `.metadata` changed during the block, the completed object
is copied onto itself server side with MetadataDirective=REPLACE (and the same SSE settings):
CopyObject below `copy_threshold` (1 GiB by default; its hard limit is 5 GiB), a managed
multipart copy (UploadPartCopy) above it. No byte goes through the client. Consequences:
between CompleteMultipartUpload and the copy (one request) the object exists without the late
metadata; if the copy fails, the writer deletes the object and raises, so nothing stays; in a
versioned bucket the version without metadata remains as a noncurrent version. Metadata that
is known up front (given to `writer(metadata=...)` and left unchanged) goes into
CreateMultipartUpload and costs no copy. The backup layout only trusts objects named by a
manifest, which is small (one PutObject, so atomic with its metadata) and written last.

Requests are retried by botocore (standard mode, `max_attempts` attempts, with timeouts);
what still fails is mapped to the tool's errors: a missing bucket and denied access (bad
credentials, policy) are UsageError naming the bucket; connection failures, 5xx and throttling
are TransientStoreError; anything else is StoreError. Credentials come from the standard AWS
chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance roles); no message
ever contains a secret.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ResponseStreamingError,
    SSLError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from spectron_backup.errors import UsageError
from spectron_backup.stores.base import (
    EndpointUnreachable,
    ObjectInfo,
    ObjectNotFound,
    ObjectWriter,
    PendingUpload,
    Store,
    StoreError,
    TransientStoreError,
    validate_key,
    validate_metadata,
    validate_prefix,
)
from spectron_backup.urls import redact_text, redact_url

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "PendingUpload", "S3Store"]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 16 * MiB
DEFAULT_UPLOAD_CONCURRENCY = 2
DEFAULT_COPY_THRESHOLD = 1 * GiB
COPY_PART_SIZE = 256 * MiB
SSE_MODES = ("AES256", "aws:kms")

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]\Z")

_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidSecurity",
        "Forbidden",
        "403",
    }
)
_REGION_CODES = frozenset(
    {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException"}
)
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
        "502",
        "504",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_STREAM_ERRORS = (
    ResponseStreamingError,
    IncompleteReadError,
    HTTPClientError,
    BotoConnectionError,
    OSError,
)


def _error_code(exc: ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {}) or {}
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return str(error.get("Code") or status), int(status)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class S3Store(Store):
    """Objects under `prefix` in `bucket`; see the module docstring."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        sse: str | None = None,
        kms_key_id: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        upload_concurrency: int = DEFAULT_UPLOAD_CONCURRENCY,
        max_attempts: int = 4,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        copy_threshold: int = DEFAULT_COPY_THRESHOLD,
        setting: str = "target",
    ) -> None:
        if not _BUCKET_NAME.match(bucket or "") or ".." in bucket:
            raise UsageError(f"invalid S3 bucket name {bucket!r} (3-63 of a-z 0-9 . - _)")
        prefix = (prefix or "").strip("/")
        if prefix:
            validate_key(prefix)
        if sse not in (None, *SSE_MODES):
            raise UsageError(f"invalid target.sse {sse!r}: use one of {', '.join(SSE_MODES)}")
        if kms_key_id and sse != "aws:kms":
            raise UsageError("target.kms_key_id needs target.sse: aws:kms")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise UsageError(f"part size {part_size} is outside S3's limits (5 MiB to 5 GiB)")
        if upload_concurrency < 1:
            raise UsageError("upload concurrency must be at least 1")
        if not MIN_PART_SIZE <= copy_threshold <= MAX_PART_SIZE:
            raise UsageError(f"copy threshold {copy_threshold} is outside 5 MiB to 5 GiB")
        if endpoint_url is not None:
            parts = urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UsageError(
                    f"invalid S3 endpoint_url {endpoint_url!r}: use http(s)://host[:port]"
                )
            # Never display credentials embedded in the endpoint URL.
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            self.endpoint_url: str | None = parts._replace(netloc=netloc).geturl()
        else:
            self.endpoint_url = None

        self.bucket = bucket
        self.prefix = prefix
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.region = region
        self.part_size = part_size
        self.upload_concurrency = upload_concurrency
        self.copy_threshold = copy_threshold
        self._sse_args: dict[str, str] = {}
        if sse:
            self._sse_args["ServerSideEncryption"] = sse
        if kms_key_id:
            self._sse_args["SSEKMSKeyId"] = kms_key_id
        self._bucket_checked = False
        #: the configuration section the bucket comes from, named in messages
        self.setting = setting

        config = Config(
            region_name=region,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            tcp_keepalive=True,
            max_pool_connections=max(10, upload_concurrency + 4),
            # Path-style requests work with every S3-compatible server behind a custom endpoint.
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        session = boto3.session.Session(region_name=region)
        self._client = session.client("s3", endpoint_url=endpoint_url, config=config)
        # Mirror boto3's managed uploads: with the default checksum policy, multipart uploads
        # declare CRC32 and the parts' checksums are passed to CompleteMultipartUpload.
        calculation = getattr(self._client.meta.config, "request_checksum_calculation", None)
        self._mpu_checksum = "CRC32" if calculation in (None, "when_supported") else None

    # -- keys and errors ---------------------------------------------------------------------

    def _full(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _where(self) -> str:
        return f" at {redact_url(self.endpoint_url)}" if self.endpoint_url else ""

    def _translate(self, exc: BaseException, what: str, key: str | None = None) -> Exception:
        """The tool's error for a botocore failure of `what` (on `key`, if any)."""
        subject = self.key_url(key) if key is not None else self.url
        if isinstance(exc, ClientError):
            code, status = _error_code(exc)
            message = (exc.response.get("Error", {}) or {}).get("Message") or ""
            if code == "NoSuchBucket":
                return UsageError(
                    f"bucket {self.bucket} does not exist{self._where()}: "
                    f"create it, or correct the {self.setting} URL"
                )
            if code in _ACCESS_CODES or status == 403:
                return UsageError(
                    f"access to bucket {self.bucket}{self._where()} was denied ({code}) "
                    f"during {what}: check the credentials (AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and the bucket's policy"
                )
            if code in _REGION_CODES or status == 301:
                return UsageError(
                    f"bucket {self.bucket} is not in region {self.region} ({code}): "
                    f"correct {self.setting}.region"
                )
            if code in _NOT_FOUND_CODES and key is not None:
                return ObjectNotFound(subject)
            detail = f"{code}: {message}" if message else code
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return TransientStoreError(f"{subject}: {what} failed: {detail}")
            return StoreError(f"{subject}: {what} failed: {detail}")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return UsageError(
                f"no usable AWS credentials for bucket {self.bucket}: set AWS_ACCESS_KEY_ID "
                f"and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE ({type(exc).__name__})"
            )
        if isinstance(exc, SSLError):
            return UsageError(
                f"TLS failure talking to {redact_url(self.endpoint_url or 'S3')} for bucket "
                f"{self.bucket}: "
                "check endpoint_url and AWS_CA_BUNDLE"
            )
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            check = (
                f"check {self.setting}.endpoint_url and that the server is up"
                if self.endpoint_url
                else f"check {self.setting}.region and the network"
            )
            return EndpointUnreachable(
                f"{subject}: {what} failed: cannot connect{self._where()}: "
                f"{redact_text(str(exc))}; {check}"
            )
        if isinstance(exc, _STREAM_ERRORS):
            return TransientStoreError(
                f"{subject}: {what} failed: connection problem{self._where()}: "
                + redact_text(str(exc))
            )
        if isinstance(exc, BotoCoreError):
            return StoreError(f"{subject}: {what} failed: {redact_text(str(exc))}")
        return exc if isinstance(exc, Exception) else StoreError(f"{subject}: {what} failed")

    def _call(
        self,
        operation: str,
        what: str,
        key: str | None = None,
        *,
        absent: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> Any:
        try:
            return getattr(self._client, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if absent and _error_code(exc)[0] in absent:
                return None
            raise self._translate(exc, what, key) from exc
        except BotoCoreError as exc:
            raise self._translate(exc, what, key) from exc

    def request(
        self, operation: str, what: str, *, absent: tuple[str, ...] = (), **kwargs: Any
    ) -> Any:
        """One request the Store interface does not cover (bucket versioning, lifecycle and
        replication, object versions: the bucket guard), with this store's client, retries
        and error mapping; `Bucket` is filled in. A ClientError whose code is in `absent`
        (for example NoSuchLifecycleConfiguration) returns None instead of raising."""
        return self._call(operation, what, absent=absent, **kwargs)

    def copy_version(self, full_key: str, version_id: str, size: int, what: str) -> None:
        """Copy one version of `full_key` (prefix included) onto the same key, server side:
        its bytes and metadata become the current version. CopyObject below
        `copy_threshold`, a managed multipart copy above it (CopyObject stops at 5 GiB)."""
        source = {"Bucket": self.bucket, "Key": full_key, "VersionId": version_id}
        self._server_copy(source, full_key, size, {}, what)

    def _server_copy(
        self,
        source: dict[str, str],
        full_key: str,
        size: int,
        extra: dict[str, Any],
        what: str,
        key: str | None = None,
    ) -> None:
        """Copy `source` onto `full_key` server side: CopyObject below `copy_threshold`, a
        managed multipart copy above it (CopyObject stops at 5 GiB)."""
        if size < self.copy_threshold:
            self._call("copy_object", what, key, Key=full_key, CopySource=source, **extra)
            return
        config = TransferConfig(
            multipart_threshold=self.copy_threshold,
            multipart_chunksize=COPY_PART_SIZE,
            max_concurrency=4,
        )
        try:
            self._client.copy(source, self.bucket, full_key, ExtraArgs=extra, Config=config)
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, what, key) from exc

    def _check_bucket(self) -> None:
        """A 404 to HEAD says neither "no such key" nor "no such bucket": ask once."""
        if self._bucket_checked:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code, status = _error_code(exc)
            if status == 404 or code in ("NoSuchBucket", "404", "NotFound"):
                raise UsageError(
                    f"bucket {self.bucket} does not exist{self._where()}: "
                    f"create it, or correct the {self.setting} URL"
                ) from exc
            raise self._translate(exc, "checking the bucket") from exc
        except BotoCoreError as exc:
            raise self._translate(exc, "checking the bucket") from exc
        self._bucket_checked = True

    # -- interface ---------------------------------------------------------------------------

    @contextmanager
    def writer(self, key: str, *, metadata: dict[str, str] | None = None) -> Iterator[ObjectWriter]:
        out = _S3ObjectWriter(self, key, validate_metadata(metadata))
        try:
            yield out
            out._commit()
        except BaseException as exc:
            out._abort(exc)
            raise
        finally:
            out._shutdown()

    def put_bytes(self, key: str, data: bytes, *, metadata: dict[str, str] | None = None) -> None:
        if len(data) > MAX_PART_SIZE:
            super().put_bytes(key, data, metadata=metadata)
            return
        full = self._full(key)
        self._call(
            "put_object",
            "upload",
            key,
            Key=full,
            Body=data,
            Metadata=validate_metadata(metadata),
            **self._sse_args,
        )

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        full = self._full(key)
        response = self._call("get_object", "download", key, Key=full)
        body = _S3Reader(self, key, full, response)
        try:
            yield body  # type: ignore[misc]
        finally:
            body.close()

    def _head_object(self, key: str) -> dict[str, Any] | None:
        """HeadObject's response, or None when there is no such object (in an existing bucket)."""
        full = self._full(key)
        try:
            return self._client.head_object(Bucket=self.bucket, Key=full)
        except ClientError as exc:
            code, status = _error_code(exc)
            if status == 404 or code in _NOT_FOUND_CODES:
                self._check_bucket()
                return None
            raise self._translate(exc, "head", key) from exc
        except BotoCoreError as exc:
            raise self._translate(exc, "head", key) from exc

    def head(self, key: str) -> ObjectInfo | None:
        response = self._head_object(key)
        if response is None:
            return None
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            modified=_utc(response["LastModified"]),
            metadata=dict(response.get("Metadata") or {}),
        )

    def lock_until(self, key: str) -> datetime | None:
        """The S3 Object Lock on the current version of the object (HeadObject's
        ObjectLockRetainUntilDate, GOVERNANCE or COMPLIANCE; a legal hold is
        `datetime.max`), or None.

        This matters because a locked object does not refuse a plain DeleteObject: a bucket
        with Object Lock is versioned, so the delete succeeds and only adds a delete marker;
        the key disappears from listings while the locked version stays (and is billed)
        until its date. Only deleting the version itself is refused (AccessDenied). So the
        caller must ask before deleting, not wait for an error.
        """
        response = self._head_object(key)
        if response is None:
            return None
        if response.get("ObjectLockLegalHoldStatus") == "ON":
            return datetime.max.replace(tzinfo=UTC)
        until = response.get("ObjectLockRetainUntilDate")
        if isinstance(until, str):  # botocore parses it; be lenient with odd servers
            until = datetime.fromisoformat(until.replace("Z", "+00:00"))
        return _utc(until) if until else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        root = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=root + prefix))
        while True:
            try:
                page = next(pages)
            except StopIteration:
                return
            except (ClientError, BotoCoreError) as exc:
                raise self._translate(exc, "list") from exc
            for item in page.get("Contents") or ():
                key = self._relative(item["Key"])
                try:
                    validate_key(key)
                except ValueError:
                    continue  # folder markers and names this interface cannot address
                yield ObjectInfo(
                    key=key,
                    size=int(item["Size"]),
                    modified=_utc(item["LastModified"]),
                    metadata={},
                )

    def delete(self, key: str) -> None:
        self._call("delete_object", "delete", key, Key=self._full(key))

    def close(self) -> None:
        self._client.close()

    # -- multipart upload housekeeping (for garbage collection) --------------------------------

    def list_multipart_uploads(self, prefix: str = "") -> list[PendingUpload]:
        """Multipart uploads under the store's prefix (+ `prefix`) started and never
        completed or aborted, sorted by key then start time."""
        validate_prefix(prefix)
        root = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client.get_paginator("list_multipart_uploads")
        found: list[PendingUpload] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
                for upload in page.get("Uploads") or ():
                    found.append(
                        PendingUpload(
                            key=self._relative(upload["Key"]),
                            upload_id=upload["UploadId"],
                            initiated=_utc(upload["Initiated"]),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, "listing multipart uploads") from exc
        found.sort(key=lambda u: (u.key, u.initiated))
        return found

    def upload_activity(self, upload: PendingUpload) -> PendingUpload | None:
        """`upload` with `last_written` set to when its newest part was written (left unset if
        it has no part yet), or None if it is no longer pending (completed or aborted since it
        was listed). One ListParts request per 1,000 parts."""
        paginator = self._client.get_paginator("list_parts")
        newest: datetime | None = None
        try:
            for page in paginator.paginate(
                Bucket=self.bucket, Key=self._full(upload.key), UploadId=upload.upload_id
            ):
                for part in page.get("Parts") or ():
                    written = _utc(part["LastModified"])
                    newest = written if newest is None else max(newest, written)
        except ClientError as exc:
            code, _status = _error_code(exc)
            if code == "NoSuchUpload":
                return None
            raise self._translate(
                exc, "listing the parts of a multipart upload", upload.key
            ) from exc
        except BotoCoreError as exc:
            raise self._translate(
                exc, "listing the parts of a multipart upload", upload.key
            ) from exc
        return upload._replace(last_written=newest)

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Abort one pending multipart upload, freeing its parts; idempotent."""
        try:
            self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._full(key), UploadId=upload_id
            )
        except ClientError as exc:
            code, _status = _error_code(exc)
            if code == "NoSuchUpload":
                return
            raise self._translate(exc, "aborting a multipart upload", key) from exc
        except BotoCoreError as exc:
            raise self._translate(exc, "aborting a multipart upload", key) from exc

    # -- used by the writer --------------------------------------------------------------------

    def _replace_metadata(
        self, key: str, full: str, metadata: dict[str, str], size: int, version_id: str | None
    ) -> None:
        """Copy the object onto itself server side with new metadata (see module docstring)."""
        source: dict[str, str] = {"Bucket": self.bucket, "Key": full}
        if version_id and version_id != "null":  # "null": unversioned, only one version
            source["VersionId"] = version_id
        extra: dict[str, Any] = {
            "Metadata": metadata,
            "MetadataDirective": "REPLACE",
            **self._sse_args,
        }
        self._server_copy(source, full, size, extra, "setting metadata", key)


class _S3ObjectWriter(ObjectWriter):
    """Fills part buffers and hands full ones to a thread pool (see the module docstring)."""

    def __init__(self, store: S3Store, key: str, metadata: dict[str, str]) -> None:
        super().__init__(metadata)
        self._store = store
        self._key = key
        self._full = store._full(key)
        self._part_size = store.part_size
        self._initial_metadata = dict(metadata)
        self._buf: bytearray | None = None
        self._fill = 0
        self._spare: bytearray | None = None
        self._upload_id: str | None = None
        self._part_number = 0
        self._parts: dict[int, dict[str, Any]] = {}
        self._pending: dict[Future, tuple[int, bytearray]] = {}
        self._pool: ThreadPoolExecutor | None = None

    # -- writing -------------------------------------------------------------------------------

    def _write(self, view: memoryview) -> None:
        while view:
            if self._buf is None:
                self._buf, self._spare = self._spare or bytearray(self._part_size), None
                self._fill = 0
            elif self._fill == self._part_size:
                # Ship a full buffer only when more bytes come: an object of exactly one part
                # is still a single PutObject.
                self._ship()
                continue
            n = min(len(view), self._part_size - self._fill)
            self._buf[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]

    def _ship(self) -> None:
        """Hand the current buffer to the pool as the next part."""
        assert self._buf is not None
        if self._upload_id is None:
            self._start_upload()
        if self._part_number >= MAX_PARTS:
            raise StoreError(
                f"{self._store.key_url(self._key)}: more than {MAX_PARTS} parts of "
                f"{self._part_size // MiB} MiB: use a larger part size"
            )
        self._part_number += 1
        buf, length = self._buf, self._fill
        self._buf, self._fill = None, 0
        if length < len(buf):
            del buf[length:]  # the last part: shrink in place, no copy
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self._store.upload_concurrency, thread_name_prefix="s3-part"
            )
        future = self._pool.submit(self._upload_part, self._part_number, buf)
        self._pending[future] = (self._part_number, buf)
        # Bounded memory: with `upload_concurrency` buffers in flight, wait before the next.
        while len(self._pending) >= self._store.upload_concurrency:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)

    def _collect(self, done) -> None:
        for future in done:
            _number, buf = self._pending.pop(future)
            future.result()  # raises the part's error
            if len(buf) == self._part_size and self._spare is None:
                self._spare = buf

    def _start_upload(self) -> None:
        extra: dict[str, Any] = dict(self._store._sse_args)
        if self._store._mpu_checksum:
            extra["ChecksumAlgorithm"] = self._store._mpu_checksum
        response = self._store._call(
            "create_multipart_upload",
            "starting a multipart upload",
            self._key,
            Key=self._full,
            Metadata=self._initial_metadata,
            **extra,
        )
        self._upload_id = response["UploadId"]

    def _upload_part(self, number: int, body: bytearray) -> None:
        extra: dict[str, Any] = {}
        if self._store._mpu_checksum:
            extra["ChecksumAlgorithm"] = self._store._mpu_checksum
        response = self._store._call(
            "upload_part",
            f"uploading part {number}",
            self._key,
            Key=self._full,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            **extra,
        )
        part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        if self._store._mpu_checksum:
            member = f"Checksum{self._store._mpu_checksum}"
            if member in response:
                part[member] = response[member]
        self._parts[number] = part

    # -- end of the block ----------------------------------------------------------------------

    def _commit(self) -> None:
        metadata = validate_metadata(self.metadata)
        store = self._store
        if self._upload_id is None:
            body = self._buf if self._buf is not None else b""
            if self._buf is not None and self._fill < len(self._buf):
                del self._buf[self._fill :]
            store._call(
                "put_object",
                "upload",
                self._key,
                Key=self._full,
                Body=body,
                Metadata=metadata,
                **store._sse_args,
            )
            self._buf = None
            return
        if self._buf is not None and self._fill:
            self._ship()
        while self._pending:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)
        parts = [self._parts[n] for n in sorted(self._parts)]
        response = store._call(
            "complete_multipart_upload",
            "completing a multipart upload",
            self._key,
            Key=self._full,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
        )
        self._upload_id = None  # completed: nothing to abort any more
        if metadata == self._initial_metadata:
            return
        try:
            store._replace_metadata(
                self._key, self._full, metadata, self.bytes_written, response.get("VersionId")
            )
        except BaseException as exc:
            # Nothing must stay when the block fails: remove the object without its metadata.
            try:
                store._call("delete_object", "delete", self._key, Key=self._full)
            except Exception as cleanup:
                exc.add_note(
                    f"{store.key_url(self._key)} was uploaded but its metadata could not be "
                    f"set, and deleting it failed too ({cleanup})"
                )
            raise

    def _abort(self, exc: BaseException) -> None:
        """Drop what the block sent: stop pending parts, abort the multipart upload."""
        for future in self._pending:
            future.cancel()
        if self._pending:
            wait(self._pending)
        self._pending.clear()
        self._buf = self._spare = None
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        try:
            self._store._client.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._full, UploadId=upload_id
            )
        except Exception as abort_error:
            log.warning(
                "could not abort multipart upload %s of %s: %s",
                upload_id,
                self._store.key_url(self._key),
                abort_error,
            )
            exc.add_note(
                f"the multipart upload {upload_id} of {self._store.key_url(self._key)} could not "
                f"be aborted ({type(abort_error).__name__}); garbage collection will remove it"
            )

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._buf = self._spare = None


class _S3Reader(io.RawIOBase):
    """A GetObject body as a readable binary file. A connection lost mid-stream is resumed
    with a ranged GET pinned to the object's ETag (a few times) before TransientStoreError."""

    def __init__(self, store: S3Store, key: str, full: str, response: dict[str, Any]) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._full = full
        self._body = response["Body"]
        self._size = int(response.get("ContentLength") or 0)
        self._etag = response.get("ETag")
        self._version = response.get("VersionId")
        self._pos = 0
        self._resumes_left = 3

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _resume(self, exc: BaseException) -> None:
        if self._resumes_left <= 0 or self._pos >= self._size:
            raise self._store._translate(exc, "download", self._key) from exc
        self._resumes_left -= 1
        log.info(
            "resuming the download of %s at byte %d", self._store.key_url(self._key), self._pos
        )
        with suppress(Exception):
            self._body.close()
        kwargs: dict[str, Any] = {"Key": self._full, "Range": f"bytes={self._pos}-"}
        if self._etag:
            kwargs["IfMatch"] = self._etag
        if self._version and self._version != "null":
            kwargs["VersionId"] = self._version
        try:
            response = self._store._call("get_object", "download", self._key, **kwargs)
        except StoreError as again:
            if "PreconditionFailed" in str(again):
                raise StoreError(
                    f"{self._store.key_url(self._key)}: the object changed while being read"
                ) from again
            raise
        self._body = response["Body"]

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed object reader")
        if size is None or size < 0:
            return self.readall()
        if size == 0 or self._pos >= self._size:
            return b""
        while True:
            try:
                data = self._body.read(size)
            except _STREAM_ERRORS as exc:
                self._resume(exc)
                continue
            if not data:  # early end of the stream
                self._resume(IncompleteReadError(actual_bytes=self._pos, expected_bytes=self._size))
                continue
            self._pos += len(data)
            return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        n = len(data)
        memoryview(buffer).cast("B")[:n] = data
        return n

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(MiB):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if not self.closed:
            with suppress(Exception):
                self._body.close()
        super().close()
