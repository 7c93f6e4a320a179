"""The Store contract, run against every store: the file store on tmp_path and the S3 store
against moto's server over HTTP."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import zstandard

from spectron_backup.errors import OperationFailed, UsageError
from spectron_backup.stores import InvalidKey, ObjectInfo, ObjectNotFound, S3Store, StoreError

MiB = 1024 * 1024
PART_SIZE = 5 * MiB  # the S3 store's part size in these tests (conftest.py)


class Boom(Exception):
    pass


def test_bytes_round_trip(store):
    before = datetime.now(UTC) - timedelta(seconds=5)
    store.put_bytes("backups/1/manifest.json", b'{"format": 1}', metadata={"sha256": "ab" * 32})
    assert store.get_bytes("backups/1/manifest.json") == b'{"format": 1}'
    info = store.head("backups/1/manifest.json")
    assert info == ObjectInfo(
        key="backups/1/manifest.json",
        size=13,
        modified=info.modified,
        metadata={"sha256": "ab" * 32},
    )
    assert info.modified.tzinfo is not None and info.modified.utcoffset() == timedelta(0)
    assert before <= info.modified <= datetime.now(UTC) + timedelta(seconds=5)
    assert store.exists("backups/1/manifest.json")


def test_empty_object_and_overwrite(store):
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""
    assert store.head("empty").size == 0
    assert store.head("empty").metadata == {}
    store.put_bytes("empty", b"now something", metadata={"v": "2"})
    assert store.get_bytes("empty") == b"now something"
    assert store.head("empty").metadata == {"v": "2"}
    store.put_bytes("empty", b"again")
    assert store.head("empty").metadata == {}


def test_unicode_keys(store):
    store.put_bytes("données/été.bin", b"x")
    assert store.get_bytes("données/été.bin") == b"x"
    assert [o.key for o in store.list("donn")] == ["données/été.bin"]


def test_stream_50mb_with_bounded_memory_and_late_metadata(store):
    """50 MiB in 1 MiB writes; the sha256 arrives after the last byte. Memory stays below
    three part sizes while writing and while reading back."""
    block = bytearray(os.urandom(MiB))
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        with store.writer("backups/big/acme/prod.surql.zst", metadata={"kind": "dump"}) as out:
            for i in range(50):
                block[:8] = i.to_bytes(8, "big")
                out.write(block)
                digest.update(block)
            assert out.tell() == 50 * MiB
            out.metadata["sha256"] = digest.hexdigest()
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()

        back = hashlib.sha256()
        size = 0
        with store.reader("backups/big/acme/prod.surql.zst") as src:
            while chunk := src.read(MiB):
                back.update(chunk)
                size += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert size == 50 * MiB
    assert back.hexdigest() == digest.hexdigest()
    assert write_peak < 3 * PART_SIZE, f"upload peak {write_peak / MiB:.1f} MiB"
    assert read_peak < 3 * PART_SIZE, f"download peak {read_peak / MiB:.1f} MiB"
    info = store.head("backups/big/acme/prod.surql.zst")
    assert info.size == 50 * MiB
    assert info.metadata == {"kind": "dump", "sha256": digest.hexdigest()}


@pytest.mark.parametrize("size", [0, 1000, PART_SIZE, PART_SIZE + 1, 2 * PART_SIZE + 17])
def test_writer_sizes_and_late_metadata(store, size):
    """Around the part boundary: empty, small, exactly one part (still one request on S3),
    one byte more (multipart), several parts."""
    data = os.urandom(size)
    with store.writer("obj") as out:
        for start in range(0, size, 333_333):
            out.write(memoryview(data)[start : start + 333_333])
        out.metadata["sha256"] = hashlib.sha256(data).hexdigest()
    assert store.get_bytes("obj") == data
    info = store.head("obj")
    assert info.size == size
    assert info.metadata == {"sha256": hashlib.sha256(data).hexdigest()}


def test_writer_through_zstd_stream_writer(store):
    """The intended use: a compressor writes into the store; its close() is harmless."""
    text = b"INSERT [ { id: person:1, name: 'x' } ];\n" * 200_000
    digest = hashlib.sha256()

    class Hashing(io.RawIOBase):
        def __init__(self, inner):
            self.inner = inner

        def writable(self):
            return True

        def write(self, b):
            digest.update(b)
            return self.inner.write(b)

    with store.writer("dump.surql.zst") as out:
        with zstandard.ZstdCompressor(level=3).stream_writer(Hashing(out), closefd=True) as z:
            z.write(text)
        out.metadata["sha256"] = digest.hexdigest()
    stored = store.get_bytes("dump.surql.zst")
    assert hashlib.sha256(stored).hexdigest() == store.head("dump.surql.zst").metadata["sha256"]
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored) == text


@pytest.mark.parametrize(
    "written", [0, 100, 3 * PART_SIZE + 5], ids=["nothing", "small", "multipart"]
)
def test_exception_in_writer_leaves_nothing(store, pending_uploads, written):
    with pytest.raises(Boom), store.writer("backups/x/partial.bin", metadata={"a": "b"}) as out:
        out.write(b"\0" * written)
        raise Boom
    assert store.head("backups/x/partial.bin") is None
    assert list(store.list()) == []
    assert pending_uploads() == []
    with pytest.raises(ObjectNotFound):
        store.get_bytes("backups/x/partial.bin")


def test_exception_keeps_the_previous_version(store):
    store.put_bytes("k", b"old", metadata={"v": "1"})
    with pytest.raises(Boom), store.writer("k") as out:
        out.write(b"new")
        raise Boom
    assert store.get_bytes("k") == b"old"
    assert store.head("k").metadata == {"v": "1"}
    assert [o.key for o in store.list()] == ["k"]


def test_list_is_sorted_recursive_and_prefix_filtered(store):
    # '-' and '.' sort before '/', '0' after: a directory walk must still give key order.
    # (No key is also a "directory" of another: the file store cannot hold both 'a' and 'a/b'.)
    keys = ["b/x", "a-b", "a/b-c", "a/b/c", "a/c", "ab", "z/y/x/w", "a/bc/d", "a0", "a.txt"]
    for key in keys:
        store.put_bytes(key, key.encode(), metadata={"k": "v"})
    listed = list(store.list())
    assert [o.key for o in listed] == sorted(keys)
    assert [o.key for o in listed][:5] == ["a-b", "a.txt", "a/b-c", "a/b/c", "a/bc/d"]
    assert all(o.size == len(o.key) for o in listed)
    assert all(o.metadata == {} for o in listed)
    assert all(o.modified.tzinfo is not None for o in listed)
    assert [o.key for o in store.list("a/")] == ["a/b-c", "a/b/c", "a/bc/d", "a/c"]
    assert [o.key for o in store.list("a/b")] == ["a/b-c", "a/b/c", "a/bc/d"]
    assert [o.key for o in store.list("a/b/")] == ["a/b/c"]
    assert [o.key for o in store.list("a")] == [
        "a-b",
        "a.txt",
        "a/b-c",
        "a/b/c",
        "a/bc/d",
        "a/c",
        "a0",
        "ab",
    ]
    assert [o.key for o in store.list("z/y/")] == ["z/y/x/w"]
    assert [o.key for o in store.list("z/y/x/w")] == ["z/y/x/w"]
    assert list(store.list("nothing/")) == []
    assert list(store.list("q")) == []


def test_list_is_lazy_and_paginates(store):
    keys = [f"many/{i:05d}" for i in range(1005)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: store.put_bytes(k, b"."), keys))
    store.put_bytes("other/1", b".")
    requests = []  # on S3: the ListObjectsV2 requests (a botocore event hook, nothing mocked)
    if isinstance(store, S3Store):
        store._client.meta.events.register(
            "provide-client-params.s3.ListObjectsV2", lambda params, **_: requests.append(params)
        )
    listing = store.list("many/")
    first = next(listing)
    assert first.key == "many/00000"
    if isinstance(store, S3Store):
        assert len(requests) == 1  # lazy: the second page is not fetched yet
    assert [first.key] + [o.key for o in listing] == keys
    if isinstance(store, S3Store):
        assert len(requests) == 2  # 1000 + 5
    assert len(list(store.list())) == 1006


def test_delete_is_idempotent(store):
    store.put_bytes("d/1", b"x", metadata={"m": "1"})
    store.put_bytes("d/2", b"y")
    store.delete("d/1")
    store.delete("d/1")
    store.delete("never/existed")
    assert store.head("d/1") is None
    assert [o.key for o in store.list()] == ["d/2"]
    store.put_bytes("d/1", b"back")
    assert store.head("d/1").metadata == {}


def test_missing_objects(store):
    assert store.head("nope") is None
    assert not store.exists("nope")
    with pytest.raises(ObjectNotFound) as err, store.reader("nope"):
        pass
    assert isinstance(err.value, StoreError) and isinstance(err.value, OperationFailed)
    assert "nope" in str(err.value)
    with pytest.raises(ObjectNotFound):
        store.get_bytes("a/b/nope")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs",
        "a//b",
        "a/./b",
        "a/../b",
        "..",
        "a/",
        ".hidden",
        "a/.tmp",
        "x.meta.json",
        "a\\b",
        "a\nb",
    ],
)
def test_invalid_keys_are_refused(store, key):
    with pytest.raises(InvalidKey):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        store.head(key)
    assert isinstance(InvalidKey("x"), UsageError)


@pytest.mark.parametrize(
    "metadata", [{"Upper": "x"}, {"under_score": "x"}, {"k": "é"}, {"k": "x" * 3000}]
)
def test_invalid_metadata_is_refused(store, metadata):
    with pytest.raises(InvalidKey):
        store.put_bytes("k", b"x", metadata=metadata)
    with pytest.raises(InvalidKey), store.writer("k") as out:
        out.write(b"x")
        out.metadata.update(metadata)
    assert store.head("k") is None


def test_reader_is_a_binary_file(store):
    store.put_bytes("r", bytes(range(256)) * 100)
    with store.reader("r") as src:
        assert src.read(10) == bytes(range(10))
        rest = src.read()
    assert rest == (bytes(range(256)) * 100)[10:]
    with store.reader("r") as src:
        buffered = io.BufferedReader(src) if isinstance(store, S3Store) else src
        assert buffered.read(3) == b"\0\1\2"
