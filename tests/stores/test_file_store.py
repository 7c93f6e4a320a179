"""What only the file store does: its layout on disk, the order of its renames, what a crash
can leave behind, and the errors about its root directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from spectron_backup.errors import UsageError
from spectron_backup.stores import FileStore, ObjectNotFound, StoreError, open_store


class Boom(Exception):
    pass


def files_under(root) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _dirs, names in os.walk(root)
        for f in names
    )


def test_layout_on_disk(file_store):
    with file_store.writer("backups/1/acme/prod.surql.zst") as out:
        out.write(b"data")
        out.metadata["sha256"] = "c" * 64
    root = file_store.root
    assert files_under(root) == [
        "backups/1/acme/prod.surql.zst",
        "backups/1/acme/prod.surql.zst.meta.json",
    ]
    assert (root / "backups/1/acme/prod.surql.zst").read_bytes() == b"data"
    sidecar = json.loads((root / "backups/1/acme/prod.surql.zst.meta.json").read_text())
    assert sidecar == {"metadata": {"sha256": "c" * 64}}
    assert file_store.url == root.as_uri()


def test_metadata_is_in_place_before_the_data_appears(file_store, monkeypatch):
    """The order that keeps a reader from seeing data without its metadata: the sidecar is
    renamed into place first, the data file last. Checked at the very moment of each rename
    (os.replace is wrapped to look at the disk, then does the real rename)."""
    real_replace = os.replace
    seen = []

    def checking_replace(src, dst):
        dst = os.fspath(dst)
        if dst.endswith(".meta.json"):
            seen.append("sidecar")
            assert not os.path.exists(dst[: -len(".meta.json")]), "data before its metadata"
        else:
            seen.append("data")
            with open(dst + ".meta.json") as sidecar:
                assert json.load(sidecar) == {"metadata": {"sha256": "d" * 64}}
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", checking_replace)
    with file_store.writer("a/b") as out:
        out.write(b"x")
        out.metadata["sha256"] = "d" * 64
    assert seen == ["sidecar", "data"]
    assert file_store.head("a/b").metadata == {"sha256": "d" * 64}


def test_exception_removes_the_temporary_file(file_store):
    file_store.put_bytes("dir/keep", b"k")
    with pytest.raises(Boom), file_store.writer("dir/new") as out:
        out.write(b"partial" * 1000)
        assert [n for n in os.listdir(file_store.root / "dir") if n.startswith(".new.tmp-")]
        raise Boom
    assert sorted(os.listdir(file_store.root / "dir")) == ["keep", "keep.meta.json"]


def test_what_a_crash_leaves_is_never_listed(file_store):
    """Temporary files and a sidecar without data (a crash between the two renames)."""
    file_store.put_bytes("b/real", b"r")
    root = file_store.root
    (root / "b" / ".lost.tmp-0123abcd").write_bytes(b"half an object")
    (root / "b" / ".lost.meta.json.tmp-4567").write_text("{")
    (root / "b" / "orphan.meta.json").write_text('{"metadata": {"sha256": "0"}}')
    (root / ".trash").mkdir()
    (root / ".trash" / "x").write_bytes(b"x")
    assert [o.key for o in file_store.list()] == ["b/real"]
    assert file_store.head("b/orphan") is None
    with pytest.raises(ObjectNotFound):
        file_store.get_bytes("b/orphan")
    file_store.put_bytes("b/orphan", b"now real")  # replaces the stray sidecar
    assert file_store.head("b/orphan").metadata == {}
    file_store.delete("b/orphan")
    assert not (root / "b" / "orphan.meta.json").exists()


def test_object_without_sidecar_has_empty_metadata(file_store):
    (file_store.root / "hand").mkdir(parents=True)
    (file_store.root / "hand" / "placed").write_bytes(b"by hand")
    info = file_store.head("hand/placed")
    assert (info.size, info.metadata) == (7, {})
    assert file_store.get_bytes("hand/placed") == b"by hand"


def test_corrupt_sidecar_is_a_store_error(file_store):
    file_store.put_bytes("k", b"x", metadata={"a": "b"})
    (file_store.root / "k.meta.json").write_text("not json")
    with pytest.raises(StoreError, match="corrupt"):
        file_store.head("k")


def test_root_is_created_on_first_write_only(tmp_path):
    root = tmp_path / "does" / "not" / "exist"
    store = open_store(root.as_uri())
    assert store.head("k") is None
    assert list(store.list()) == []
    store.delete("k")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("k")
    assert not root.exists()  # reading never creates anything
    store.put_bytes("x/y", b"1")
    assert (root / "x" / "y").read_bytes() == b"1"


def test_root_that_is_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match=f"{tmp_path / 'afile'} exists but is not a directory"):
        open_store((tmp_path / "afile").as_uri())
    store = open_store((tmp_path / "afile" / "below").as_uri())
    with pytest.raises(UsageError, match=str(tmp_path / "afile" / "below")):
        store.put_bytes("k", b"x")


@pytest.fixture
def immutable_dir(tmp_path):
    """A directory nobody can write in, not even root (chattr +i)."""
    path = tmp_path / "readonly"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if not chattr or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root and chattr +i is not available here")
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_unwritable_root_is_a_usage_error(immutable_dir):
    store = open_store(immutable_dir.as_uri())
    with pytest.raises(UsageError, match=f"backup target {immutable_dir} is not writable") as err:
        store.put_bytes("k", b"x")
    assert err.value.exit_code == 2
    with pytest.raises(UsageError, match="not writable"), store.writer("sub/k") as out:
        out.write(b"x")
    nested = open_store((immutable_dir / "new-root").as_uri())
    with pytest.raises(UsageError, match="not writable"):
        nested.put_bytes("k", b"x")


def test_key_that_collides_with_a_directory(file_store):
    """'a' and 'a/b' cannot both exist in a directory tree: a StoreError, not a crash."""
    file_store.put_bytes("a/b", b"1")
    with pytest.raises(StoreError, match="directory of that name exists"):
        file_store.put_bytes("a", b"2")
    assert file_store.head("a") is None
    with pytest.raises(ObjectNotFound):
        file_store.get_bytes("a")
    file_store.delete("a")  # no object: nothing to do
    with pytest.raises(StoreError, match="a file of that name is in the way"):
        file_store.put_bytes("a/b/c", b"3")
    assert [o.key for o in file_store.list()] == ["a/b"]
    assert sorted(os.listdir(file_store.root)) == ["a"]  # no temporary file, no stray sidecar


def test_delete_removes_emptied_directories_but_not_the_root(file_store):
    file_store.put_bytes("x/y/z/1", b"1")
    file_store.put_bytes("x/2", b"2")
    file_store.delete("x/y/z/1")
    assert not (file_store.root / "x" / "y").exists()
    assert (file_store.root / "x" / "2").exists()
    file_store.delete("x/2")
    assert file_store.root.is_dir() and os.listdir(file_store.root) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file://relative/path", "three slashes"),
        ("file:relative", "invalid target URL"),
        ("file:///x?y=1", "no query"),
    ],
)
def test_bad_file_urls(url, message):
    with pytest.raises(UsageError, match=message):
        open_store(url)


@pytest.mark.parametrize("option", ["sse", "kms_key_id", "endpoint_url"])
def test_s3_settings_are_refused_for_a_file_target(tmp_path, option):
    with pytest.raises(UsageError, match=f"target.{option} applies to s3:// targets only"):
        open_store(tmp_path.as_uri(), **{option: "AES256"})


def test_file_url_forms(tmp_path):
    spaced = tmp_path / "with space"
    store = open_store(f"file://localhost{spaced.as_posix().replace(' ', '%20')}")
    assert isinstance(store, FileStore) and store.root == spaced
    store.put_bytes("k", b"v")
    assert (spaced / "k").read_bytes() == b"v"
    assert store.url == spaced.as_uri()
