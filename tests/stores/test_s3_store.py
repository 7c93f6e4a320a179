"""What only the S3 store does: SSE pass-through, late metadata by server-side copy, error
mapping (made at the network's edge where moto cannot), dropped connections, multipart
housekeeping. All against real servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from spectron_backup.errors import UsageError
from spectron_backup.stores import (
    EndpointUnreachable,
    ObjectNotFound,
    PendingUpload,
    S3Store,
    StoreError,
    TransientStoreError,
    open_store,
)

MiB = 1024 * 1024
PART_SIZE = 5 * MiB
PREFIX = "pfx/sub"  # the prefix of the stores made by make_store (conftest.py)
SECRET = "sEcReT/DoNotPrint+0123456789abcdefghijklmn"


class Boom(Exception):
    pass


def record_operations(store: S3Store) -> list[tuple[str, dict]]:
    """The S3 operations the store's client calls from now on, with their parameters (a
    botocore event hook: the requests still go to the server)."""
    calls: list[tuple[str, dict]] = []

    def hook(model, params, **_):
        calls.append((model.name, dict(params)))

    store._client.meta.events.register("provide-client-params.s3.*", hook)
    return calls


def write_parts(store: S3Store, key: str, size: int, *, late: dict | None = None, early=None):
    data = os.urandom(size)
    with store.writer(key, metadata=early) as out:
        for start in range(0, size, MiB):
            out.write(data[start : start + MiB])
        if late:
            out.metadata.update(late)
    return data


@pytest.fixture
def fake_credentials(monkeypatch):
    """Credentials in the standard variables, with a secret that must never be printed."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# --- late metadata ------------------------------------------------------------------------------


def test_late_metadata_on_multipart_is_set_by_one_server_side_copy(
    make_store, s3_client, s3_bucket
):
    store = make_store()
    calls = record_operations(store)
    data = write_parts(
        store, "late.bin", 2 * PART_SIZE + 3, early={"kind": "dump"}, late={"sha256": "f" * 64}
    )
    names = [name for name, _ in calls]
    assert names.count("UploadPart") == 3
    assert names[-2:] == ["CompleteMultipartUpload", "CopyObject"]
    copy = calls[-1][1]
    assert copy["MetadataDirective"] == "REPLACE"
    assert copy["Metadata"] == {"kind": "dump", "sha256": "f" * 64}
    assert copy["CopySource"]["Key"] == f"{PREFIX}/late.bin"
    assert store.get_bytes("late.bin") == data
    raw = s3_client.head_object(Bucket=s3_bucket, Key=f"{PREFIX}/late.bin")
    assert raw["Metadata"] == {"kind": "dump", "sha256": "f" * 64}


def test_metadata_known_up_front_costs_no_copy(make_store):
    store = make_store()
    calls = record_operations(store)
    write_parts(store, "early.bin", PART_SIZE + 1, early={"sha256": "e" * 64})
    names = [name for name, _ in calls]
    assert "CopyObject" not in names and names[-1] == "CompleteMultipartUpload"
    assert calls[0][1]["Metadata"] == {"sha256": "e" * 64}  # CreateMultipartUpload
    assert store.head("early.bin").metadata == {"sha256": "e" * 64}


def test_small_objects_are_one_put(make_store):
    store = make_store()
    calls = record_operations(store)
    write_parts(store, "one.bin", PART_SIZE, late={"sha256": "0" * 64})
    assert [name for name, _ in calls] == ["PutObject"]
    assert calls[0][1]["Metadata"] == {"sha256": "0" * 64}
    assert store.head("one.bin").size == PART_SIZE


def test_large_objects_get_metadata_by_managed_multipart_copy(make_store, s3_client, s3_bucket):
    """Above copy_threshold (1 GiB by default; CopyObject stops at 5 GiB) the copy onto itself
    is s3transfer's managed multipart copy (UploadPartCopy)."""
    store = make_store(copy_threshold=PART_SIZE, sse="AES256")
    calls = record_operations(store)
    data = write_parts(store, "huge.bin", 2 * PART_SIZE + 5, late={"sha256": "a" * 64})
    names = [name for name, _ in calls]
    assert "UploadPartCopy" in names and "CopyObject" not in names
    assert store.get_bytes("huge.bin") == data
    raw = s3_client.head_object(Bucket=s3_bucket, Key=f"{PREFIX}/huge.bin")
    assert raw["Metadata"] == {"sha256": "a" * 64}
    assert raw["ServerSideEncryption"] == "AES256"
    assert store.list_multipart_uploads() == []


# --- server-side encryption ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sse", "kms_key_id"),
    [
        ("AES256", None),
        ("aws:kms", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    ],
)
def test_sse_settings_pass_through(make_store, s3_client, s3_bucket, sse, kms_key_id):
    store = make_store(sse=sse, kms_key_id=kms_key_id)
    store.put_bytes("put", b"x", metadata={"a": "1"})
    write_parts(store, "small", 1000, late={"a": "2"})
    write_parts(store, "multi-early", PART_SIZE + 1, early={"a": "3"})
    write_parts(store, "multi-late", PART_SIZE + 1, late={"a": "4"})  # the copy keeps SSE
    for key, value in [("put", "1"), ("small", "2"), ("multi-early", "3"), ("multi-late", "4")]:
        raw = s3_client.head_object(Bucket=s3_bucket, Key=f"{PREFIX}/{key}")
        assert raw["ServerSideEncryption"] == sse, key
        assert raw["Metadata"] == {"a": value}, key
        if kms_key_id:
            assert raw["SSEKMSKeyId"] == kms_key_id, key


def test_without_sse_no_encryption_header_is_sent(make_store):
    store = make_store()
    calls = record_operations(store)
    store.put_bytes("plain", b"x")
    assert "ServerSideEncryption" not in calls[0][1]


# --- configuration errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("s3://", {}, "invalid target URL"),
        ("s3://ab", {}, "invalid S3 bucket name"),
        ("s3://Bad_Bucket/x", {}, "invalid S3 bucket name"),
        ("s3://user:pw@bucket/x", {}, "invalid target URL"),
        ("s3://bucket/../x", {}, "invalid prefix"),
        ("s3://bucket/x", {"sse": "rot13"}, "invalid target.sse"),
        ("s3://bucket/x", {"kms_key_id": "k"}, "needs target.sse: aws:kms"),
        ("s3://bucket/x", {"endpoint_url": "127.0.0.1:9000"}, "invalid S3 endpoint_url"),
        ("s3://bucket/x", {"part_size": MiB}, "part size"),
        ("ftp://bucket/x", {}, "unsupported target URL scheme"),
        ("bucket/x", {}, "invalid target URL"),
    ],
)
def test_bad_target_configuration_is_a_usage_error(url, options, message):
    with pytest.raises(UsageError, match=message) as err:
        open_store(url, **options)
    assert err.value.exit_code == 2


def test_display_url_has_no_secret():
    store = open_store("s3://bucket/a/b/", endpoint_url="http://key:secret@127.0.0.1:9/")
    assert store.url == "s3://bucket/a/b"
    assert "secret" not in store.endpoint_url and "secret" not in repr(store)


def test_missing_bucket_is_a_usage_error(s3_server, make_store):
    store = make_store(bucket="no-such-bucket-here")
    attempts = [
        lambda: store.put_bytes("k", b"x"),
        lambda: write_parts(store, "small", 10, late={"a": "b"}),
        lambda: write_parts(store, "multi", PART_SIZE + 1),
        lambda: list(store.list()),
        lambda: store.head("k"),  # a 404 to HEAD says nothing: the store asks about the bucket
        lambda: store.get_bytes("k"),
        lambda: store.delete("k"),
        lambda: store.list_multipart_uploads(),
    ]
    for attempt in attempts:
        with pytest.raises(UsageError) as err:
            attempt()
        assert "bucket no-such-bucket-here does not exist" in str(err.value)
        assert s3_server in str(err.value)


def test_bad_credentials_are_a_usage_error_without_the_secret(fake_credentials, s3_error_endpoint):
    """Moto accepts any credentials, so the fault is made at the edge: a real HTTP server on
    127.0.0.1 answers 403 with S3's InvalidAccessKeyId document."""
    endpoint, seen = s3_error_endpoint(
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
    )
    store = open_store(
        "s3://my-backups/prod", endpoint_url=endpoint, max_attempts=2, part_size=PART_SIZE
    )
    attempts = {
        "put": lambda: store.put_bytes("k", b"x"),
        "writer": lambda: write_parts(store, "multi", PART_SIZE + 1, late={"a": "b"}),
        "list": lambda: list(store.list()),
        "head": lambda: store.head("k"),
        "get": lambda: store.get_bytes("k"),
        "delete": lambda: store.delete("k"),
        "uploads": lambda: store.list_multipart_uploads(),
    }
    messages = {}
    for name, attempt in attempts.items():
        with pytest.raises(UsageError) as err:
            attempt()
        message = str(err.value)
        assert "access to bucket my-backups" in message, name
        assert "check the credentials" in message, name
        assert SECRET not in message and SECRET not in repr(err.value.__cause__), name
        assert all(SECRET not in note for note in getattr(err.value, "__notes__", ()))
        messages[name] = message
    assert "(InvalidAccessKeyId)" in messages["put"]  # the code from S3's error document
    assert "(403)" in messages["head"]  # HEAD answers carry no document: the status only
    assert len(seen) >= len(attempts)  # real requests; 403 is not retried
    assert not any("partNumber" in request for request in seen)  # stopped at CreateMultipartUpload


@pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError")])
def test_server_errors_are_transient_after_retries(
    fake_credentials, s3_error_endpoint, status, code
):
    endpoint, seen = s3_error_endpoint(status, code, "Please reduce your request rate.")
    store = open_store("s3://my-backups/prod", endpoint_url=endpoint, max_attempts=2)
    with pytest.raises(TransientStoreError, match=code):
        store.put_bytes("k", b"x")
    assert len(seen) == 2  # botocore retried once (max_attempts=2)


def test_connection_refused_is_transient_and_names_the_endpoint_setting(fake_credentials):
    """Retried by the flows (a server restarting); on the command line exit status 2, like an
    unreachable SurrealDB: the operator checks the address."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = open_store(
        "s3://my-backups/prod", endpoint_url=f"http://127.0.0.1:{port}", max_attempts=2
    )
    with pytest.raises(EndpointUnreachable) as refused:
        store.put_bytes("k", b"x")
    assert isinstance(refused.value, TransientStoreError) and refused.value.transient
    assert refused.value.exit_code == 2
    assert f"cannot connect at http://127.0.0.1:{port}" in str(refused.value)
    assert str(refused.value).endswith("check target.endpoint_url and that the server is up")
    with pytest.raises(EndpointUnreachable):
        store.head("k")


# --- dropped connections ------------------------------------------------------------------------


def test_upload_with_connections_cut_fails_and_aborts(make_store, cutting_proxy):
    """Every connection is reset after 1 MiB towards the server: each part upload dies,
    botocore's retries too, the writer raises, and the abort (a small request) gets through."""
    proxy = cutting_proxy(cut_upstream_after=MiB)
    through_proxy = make_store(endpoint=proxy.url)
    direct = make_store()
    with pytest.raises(TransientStoreError, match="connection problem"):
        write_parts(
            through_proxy, "backups/1/db.surql.zst", 3 * PART_SIZE, late={"sha256": "0" * 64}
        )
    assert proxy.cut_count >= 2  # the first attempt and botocore's retry
    assert direct.head("backups/1/db.surql.zst") is None
    assert list(direct.list()) == []
    assert direct.list_multipart_uploads() == []


def test_upload_when_the_network_goes_away(make_store, cutting_proxy):
    """The proxy dies at the first cut, so the abort cannot get through either. What is true
    then: the writer raises the transfer error (with a note about the failed abort), no object
    exists, and the multipart upload stays pending until garbage collection aborts it."""
    proxy = cutting_proxy(cut_upstream_after=MiB, die_after_cut=True)
    through_proxy = make_store(endpoint=proxy.url, max_attempts=1)
    direct = make_store()
    with pytest.raises(TransientStoreError) as err:
        write_parts(through_proxy, "backups/1/db.surql.zst", 3 * PART_SIZE)
    notes = " ".join(getattr(err.value, "__notes__", ()))
    assert "could not be aborted" in notes and "garbage collection" in notes
    assert direct.head("backups/1/db.surql.zst") is None
    pending = direct.list_multipart_uploads()
    assert [upload.key for upload in pending] == ["backups/1/db.surql.zst"]
    direct.abort_multipart_upload(pending[0].key, pending[0].upload_id)
    assert direct.list_multipart_uploads() == []


def test_download_resumes_after_a_cut(make_store, cutting_proxy):
    direct = make_store()
    data = os.urandom(12 * MiB)
    direct.put_bytes("blob", data)
    proxy = cutting_proxy(cut_downstream_after=3 * MiB, cuts=1)
    through_proxy = make_store(endpoint=proxy.url)
    digest = hashlib.sha256()
    with through_proxy.reader("blob") as src:
        while chunk := src.read(MiB):
            digest.update(chunk)
    assert proxy.cut_count == 1
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_download_cut_every_time_is_transient(make_store, cutting_proxy):
    direct = make_store()
    direct.put_bytes("blob", os.urandom(8 * MiB))
    proxy = cutting_proxy(cut_downstream_after=2 * MiB)
    through_proxy = make_store(endpoint=proxy.url)
    with pytest.raises(TransientStoreError), through_proxy.reader("blob") as src:
        while src.read(MiB):
            pass


def test_reading_an_object_replaced_meanwhile_fails(make_store, cutting_proxy):
    """The resumed read is pinned to the ETag: it never mixes two versions."""
    direct = make_store()
    direct.put_bytes("blob", b"a" * (8 * MiB))
    proxy = cutting_proxy(cut_downstream_after=2 * MiB, cuts=1)
    through_proxy = make_store(endpoint=proxy.url)
    with (
        pytest.raises(StoreError, match="changed while being read"),
        through_proxy.reader("blob") as src,
    ):
        # Replaced as soon as the GET is open, so the cut (wherever it falls: a reset can
        # discard bytes already in flight) is always resumed after the replacement.
        direct.put_bytes("blob", b"b" * (8 * MiB))
        while src.read(MiB):
            pass


# --- multipart housekeeping ---------------------------------------------------------------------


def test_list_and_abort_multipart_uploads(make_store, s3_client, s3_bucket):
    store = make_store()
    ids = {}
    for key in (
        f"{PREFIX}/backups/2/a.zst",
        f"{PREFIX}/backups/1/b.zst",
        "elsewhere/c.zst",
        f"{PREFIX}x/d",
    ):
        ids[key] = s3_client.create_multipart_upload(Bucket=s3_bucket, Key=key)["UploadId"]
    pending = store.list_multipart_uploads()
    assert [(u.key, u.upload_id) for u in pending] == [
        ("backups/1/b.zst", ids[f"{PREFIX}/backups/1/b.zst"]),
        ("backups/2/a.zst", ids[f"{PREFIX}/backups/2/a.zst"]),
    ]
    assert all(
        isinstance(u, PendingUpload) and u.initiated.utcoffset().total_seconds() == 0
        for u in pending
    )
    key, upload_id = pending[0].key, pending[0].upload_id
    assert [u.key for u in store.list_multipart_uploads("backups/2/")] == ["backups/2/a.zst"]
    # No part yet: its last sign of life is its start.
    assert store.upload_activity(pending[0]) == pending[0]
    assert pending[0].active_at == pending[0].initiated
    store.abort_multipart_upload(key, upload_id)
    store.abort_multipart_upload(key, upload_id)  # idempotent
    assert store.upload_activity(pending[0]) is None  # no longer pending
    assert [u.key for u in store.list_multipart_uploads()] == ["backups/2/a.zst"]
    assert len(s3_client.list_multipart_uploads(Bucket=s3_bucket)["Uploads"]) == 3


# --- prefixes -----------------------------------------------------------------------------------


def test_stores_see_only_their_prefix(make_store, s3_client, s3_bucket):
    store = make_store()
    sibling = make_store(prefix="pfx/sub2")
    parent = make_store(prefix="pfx")
    whole = make_store(prefix="")
    store.put_bytes("x", b"1")
    sibling.put_bytes("x", b"2")
    s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/folder/", Body=b"")  # a console "folder"
    s3_client.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/.hidden", Body=b"")
    assert [o.key for o in store.list()] == ["x"]
    assert store.get_bytes("x") == b"1" and sibling.get_bytes("x") == b"2"
    assert [o.key for o in parent.list()] == ["sub/x", "sub2/x"]
    assert [o.key for o in whole.list("pfx/sub/")] == ["pfx/sub/x"]
    with pytest.raises(ObjectNotFound, match=f"s3://{s3_bucket}/pfx/sub2/nope"):
        sibling.get_bytes("nope")
