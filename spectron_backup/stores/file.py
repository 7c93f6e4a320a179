"""A store in a local directory (`file:///srv/backups`).

Layout: the object `a/b/c` is the file `<root>/a/b/c`; its metadata is the JSON sidecar
`<root>/a/b/c.meta.json` (`{"metadata": {...}}`), written for every object, even with empty
metadata.

Commit order of `writer()` (the design that keeps data and metadata together):

1. the data goes to `.<name>.tmp-<random>` in the object's directory, then fsync;
2. the sidecar goes to `.<name>.meta.json.tmp-<random>`, fsync, then is renamed into place;
3. the data file is renamed into place (`os.replace`, atomic), then the directory is fsynced.

The sidecar is in place *before* the data appears, so a reader who sees the data file always
finds its metadata. `delete()` removes the data file first and the sidecar second, for the same
reason. What a crash can leave: temporary files (names beginning with '.') and a sidecar
without data; `list()` never shows either (it skips names beginning with '.' and sidecars),
`head()` of a key without data is None, and the next write or delete of that key replaces or
removes the stray sidecar. Overwriting an existing key has a window (between steps 2 and 3) in
which the old data is seen with the new metadata; the backup layout writes every key once.

The root directory is created on the first write. A root that exists but is not a directory,
or cannot be written, is a UsageError naming it. Reading a root that does not exist finds
nothing; `require_root()` makes it an error instead, for commands that only read (a typo in
the path must not look like an empty target).
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from spectron_backup.errors import UsageError
from spectron_backup.stores.base import (
    METADATA_SUFFIX,
    ObjectInfo,
    ObjectNotFound,
    ObjectWriter,
    PendingUpload,
    Store,
    StoreError,
    validate_key,
    validate_metadata,
    validate_prefix,
)

__all__ = ["FileStore"]

_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{secrets.token_hex(6)}")


#: `_temp_name`'s names: `.<name>.tmp-<12 hex>`
_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp-[0-9a-f]{12}$")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _FileObjectWriter(ObjectWriter):
    def __init__(self, fp: BinaryIO, metadata: dict[str, str], url: str) -> None:
        super().__init__(metadata)
        self._fp = fp
        self._url = url

    def _write(self, view: memoryview) -> None:
        try:
            self._fp.write(view)
        except OSError as exc:
            raise StoreError(f"{self._url}: write failed: {exc.strerror or exc}") from exc


class FileStore(Store):
    """Objects as files under `root` (an absolute path); see the module docstring."""

    def __init__(self, root: str | os.PathLike[str], *, setting: str = "target") -> None:
        root = Path(root)
        if not root.is_absolute():
            raise UsageError(f"file store root {str(root)!r} is not an absolute path")
        self.root = Path(os.path.normpath(root))
        self.url = self.root.as_uri()
        #: the setting the directory comes from, named in messages
        self.setting = setting
        self._name = "backup target" if setting == "target" else f"{setting} directory"
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"{self._name} {self.root} exists but is not a directory")

    def require_root(self) -> None:
        """UsageError unless the root directory exists: for commands that only read, where a
        missing directory is a mistyped path, not an empty store (writes create it)."""
        if self.root.is_dir():
            return
        raise UsageError(
            f"{self._name} {self.root} does not exist: check {self.setting}.url in the "
            "configuration (a backup creates the directory; this command only reads)"
        )

    # -- paths -------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + METADATA_SUFFIX)

    def _not_writable(self, exc: OSError) -> UsageError:
        return UsageError(
            f"{self._name} {self.root} is not writable: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else "")
        )

    def _make_dirs(self, directory: Path) -> None:
        """Create the root, then `directory` under it, with clear errors."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise UsageError(f"{self._name} {self.root} exists but is not a directory") from None
        except NotADirectoryError:
            raise UsageError(
                f"{self._name} {self.root} cannot be created: a parent is not a directory"
            ) from None
        except OSError as exc:
            if exc.errno in _NOT_WRITABLE:
                raise self._not_writable(exc) from None
            raise StoreError(f"cannot create {self._name} {self.root}: {exc}") from exc
        if directory == self.root:
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            rel = directory.relative_to(self.root).as_posix()
            raise StoreError(
                f"{self.url}/{rel}: cannot create the directory: a file of that name is in the way"
            ) from None
        except OSError as exc:
            if exc.errno in _NOT_WRITABLE:
                raise self._not_writable(exc) from None
            raise StoreError(f"cannot create {directory}: {exc}") from exc

    def _open_temp(self, path: Path) -> tuple[BinaryIO, Path]:
        # A concurrent delete() may remove the (then empty) directory between mkdir and open.
        for _attempt in range(5):
            self._make_dirs(path.parent)
            tmp = _temp_name(path)
            try:
                return open(tmp, "xb"), tmp
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno in _NOT_WRITABLE:
                    raise self._not_writable(exc) from None
                raise StoreError(f"cannot write {tmp}: {exc.strerror or exc}") from exc
        raise StoreError(f"cannot write in {path.parent}: the directory keeps disappearing")

    # -- interface ---------------------------------------------------------------------------

    @contextmanager
    def writer(self, key: str, *, metadata: dict[str, str] | None = None) -> Iterator[ObjectWriter]:
        path = self._path(key)
        url = self.key_url(key)
        initial = validate_metadata(metadata)
        fp, tmp = self._open_temp(path)
        out = _FileObjectWriter(fp, initial, url)
        sidecar = self._sidecar(path)
        sidecar_tmp: Path | None = None
        placed_sidecar = False
        try:
            yield out
            final = validate_metadata(out.metadata)
            if path.is_dir():
                raise StoreError(f"{url}: cannot write: a directory of that name exists")
            try:
                fp.flush()
                os.fsync(fp.fileno())
                fp.close()
                sidecar_tmp = _temp_name(sidecar)
                with open(sidecar_tmp, "x", encoding="utf-8") as side:
                    json.dump({"metadata": final}, side, sort_keys=True)
                    side.flush()
                    os.fsync(side.fileno())
                os.replace(sidecar_tmp, sidecar)
                sidecar_tmp, placed_sidecar = None, True
                os.replace(tmp, path)
                placed_sidecar = False
            except OSError as exc:
                if exc.errno in _NOT_WRITABLE:
                    raise self._not_writable(exc) from None
                if isinstance(exc, IsADirectoryError):
                    raise StoreError(
                        f"{url}: cannot write: a directory of that name exists"
                    ) from None
                raise StoreError(f"{url}: cannot commit the object: {exc.strerror or exc}") from exc
            _fsync_dir(path.parent)
        except BaseException:
            fp.close()
            if placed_sidecar and not path.exists():
                sidecar_tmp = sidecar  # the data never appeared: take its metadata back
            for leftover in (tmp, sidecar_tmp):
                if leftover is not None:
                    with suppress(OSError):
                        leftover.unlink(missing_ok=True)
            raise

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        try:
            fp = open(path, "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(self.key_url(key)) from None
        except OSError as exc:
            raise StoreError(f"{self.key_url(key)}: cannot read: {exc.strerror or exc}") from exc
        with fp:
            yield fp

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StoreError(f"{self.key_url(key)}: cannot stat: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            return None
        return ObjectInfo(
            key=key,
            size=st.st_size,
            modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
            metadata=self._read_metadata(key, path),
        )

    def _read_metadata(self, key: str, path: Path) -> dict[str, str]:
        try:
            text = self._sidecar(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}  # an object put there by hand, or deleted meanwhile
        except OSError as exc:
            raise StoreError(f"{self.key_url(key)}: cannot read its metadata: {exc}") from exc
        try:
            document = json.loads(text)
            metadata = document["metadata"]
            if not isinstance(metadata, dict):
                raise TypeError
            return {str(k): str(v) for k, v in metadata.items()}
        except (ValueError, KeyError, TypeError):
            raise StoreError(
                f"{self.key_url(key)}: its metadata file {self._sidecar(path)} is corrupt"
            ) from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        base, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*base.split("/")) if base else self.root
        return self._walk(start, f"{base}/" if base else "", prefix)

    def _walk(self, directory: Path | str, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under `directory` (whose keys start with `rel`) in key order.

        Sorting a directory's entries by name, with '/' appended to the names of directories,
        gives the order of the full keys, so the walk is lazy: one directory at a time.
        """
        try:
            with os.scandir(directory) as it:
                entries = []
                for entry in it:
                    name = entry.name
                    if name.startswith("."):
                        continue  # temporary files: never objects
                    try:
                        if entry.is_dir():
                            entries.append((f"{name}/", entry, True))
                        elif entry.is_file() and not name.endswith(METADATA_SUFFIX):
                            entries.append((name, entry, False))
                    except OSError:
                        continue
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StoreError(f"cannot list {directory}: {exc.strerror or exc}") from exc
        entries.sort(key=lambda item: item[0])
        for sort_name, entry, is_dir in entries:
            full = rel + sort_name
            if is_dir:
                if full.startswith(prefix) or prefix.startswith(full):
                    yield from self._walk(entry.path, full, prefix)
            elif full.startswith(prefix):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted meanwhile
                yield ObjectInfo(
                    key=full,
                    size=st.st_size,
                    modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
                    metadata={},
                )

    # -- writes that never finished ----------------------------------------------------------

    def list_multipart_uploads(self, prefix: str = "") -> list[PendingUpload]:
        """The temporary files of writes that never finished (a crash, a kill), under
        `prefix`: this store's counterpart of S3's pending multipart uploads, so that garbage
        collection ages and removes both alike. `key` is the object the write would have
        become, `upload_id` the temporary file's name, `initiated` its last modification."""
        validate_prefix(prefix)
        found: list[PendingUpload] = []
        if not self.root.is_dir():
            return found
        for directory, _dirs, files in os.walk(self.root):
            rel = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                match = _TEMP.match(name)
                if not match:
                    continue
                key = match["name"] if rel == "." else f"{rel}/{match['name']}"
                if not key.startswith(prefix):
                    continue
                try:
                    modified = os.stat(os.path.join(directory, name)).st_mtime
                except FileNotFoundError:
                    continue  # finished or removed meanwhile
                found.append(PendingUpload(key, name, datetime.fromtimestamp(modified, tz=UTC)))
        return sorted(found, key=lambda u: (u.key, u.initiated))

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Remove one temporary file found by `list_multipart_uploads`; idempotent."""
        match = _TEMP.match(upload_id)
        if not match or "/" in upload_id or match["name"] != key.rpartition("/")[2]:
            raise UsageError(f"{upload_id!r} is not a temporary file of {key!r}")
        directory = self.root.joinpath(*key.split("/")[:-1])
        with suppress(FileNotFoundError):
            (directory / upload_id).unlink()

    def delete(self, key: str) -> None:
        path = self._path(key)
        for victim in (path, self._sidecar(path)):  # data first: never data without metadata
            try:
                os.unlink(victim)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                pass
            except OSError as exc:
                if exc.errno in _NOT_WRITABLE:
                    raise self._not_writable(exc) from None
                raise StoreError(
                    f"{self.key_url(key)}: cannot delete: {exc.strerror or exc}"
                ) from exc
        # Remove directories left empty, up to (not including) the root.
        directory = path.parent
        while directory != self.root and self.root in directory.parents:
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = directory.parent
