"""Client-side encryption of backup objects in the age format (age-encryption.org/v1), with
pyrage (the Python binding of Rust's rage).

The backup host holds only recipients, public keys (`age1...`, or SSH public keys); the
identities, private keys, are needed only where restores and drills run. Anyone with the
`age` command line and a matching key can open a stored object:
`age -d -i key.txt db.surql.zst.age | zstd -d > db.surql`.

pyrage's `encrypt_io` pulls plaintext from a reader and pushes ciphertext into a writer, one
64 KiB age chunk at a time. The backup pipeline pushes (the exporter writes), so
`encrypting_writer` runs `encrypt_io` in a thread fed through bounded in-memory queues:
memory stays flat (a few MiB whatever the database size). Decryption (`decrypt_to`) pulls
from the stored object directly, in the calling thread.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import IO, Any

import pyrage
from pydantic import SecretStr
from pyrage import ssh, x25519

from spectron_backup.errors import OperationFailed, UsageError

#: suffix of an encrypted object's key, after the compressed dump's `.surql.zst`
AGE_SUFFIX = ".age"
#: the `encryption` metadata of an encrypted object in the store
AGE_FORMAT = "age-encryption.org/v1"

Recipient = x25519.Recipient | ssh.Recipient
Identity = x25519.Identity | ssh.Identity

_SSH_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ")


class IdentityMismatch(UsageError):
    """No configured identity opens an encrypted backup (exit status 2): the operator must
    give the private key of one of its recipients."""


class AgeAuthenticationFailed(OperationFailed):
    """An encrypted object does not decrypt with a key it was encrypted to: it was changed
    after the backup (exit status 1, a failed drill)."""


# -- keys -------------------------------------------------------------------------------------


def looks_secret(text: str) -> bool:
    """True for private key material (never to be echoed, never a recipient)."""
    upper = text.upper()
    return "AGE-SECRET-KEY-" in upper or "PRIVATE KEY" in upper


def normalize_recipient(text: str) -> str:
    """A recipient as the manifest records it: surrounding and repeated whitespace removed."""
    return " ".join(text.split())


def parse_recipient(text: str) -> Recipient:
    """An age (`age1...`) or SSH (`ssh-ed25519 ...`, `ssh-rsa ...`) public key, or a
    ValueError that never repeats a private key it was given by mistake."""
    key = normalize_recipient(text)
    if looks_secret(key):
        raise ValueError(
            "this is a private key (an identity), not a public key: put its public key here "
            "(`age-keygen -y key.txt`) and keep the private key off the backup host"
        )
    try:
        if key.startswith(_SSH_PREFIXES):
            return ssh.Recipient.from_str(key)
        if key.startswith("age1"):
            return x25519.Recipient.from_str(key)
    except pyrage.RecipientError as exc:
        raise ValueError(f"not a valid public key ({exc})") from None
    raise ValueError("not an age public key (age1...) or an SSH public key (ssh-ed25519/ssh-rsa)")


def parse_recipients(texts: Sequence[str]) -> list[Recipient]:
    return [parse_recipient(text) for text in texts]


def parse_identities(text: str) -> list[Identity]:
    """The private keys of `encryption.identity`: an age identity file (`AGE-SECRET-KEY-1...`
    lines, `#` comments and blank lines allowed, as age-keygen writes it) or one unencrypted
    OpenSSH private key. A ValueError names the line, never its content."""
    if "-----BEGIN" in text:
        try:
            return [ssh.Identity.from_buffer(text.strip().encode() + b"\n")]
        except pyrage.IdentityError as exc:
            raise ValueError(
                f"an SSH private key that cannot be used ({exc}; passphrase-protected keys "
                "are not supported)"
            ) from None
    identities: list[Identity] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.upper().startswith("AGE-SECRET-KEY-1"):
            if line.startswith(("age1", *_SSH_PREFIXES)):
                raise ValueError(
                    f"line {number} is a public key: the identity is the private key "
                    "(AGE-SECRET-KEY-1...) of one of the recipients"
                )
            raise ValueError(f"line {number} is not an age private key (AGE-SECRET-KEY-1...)")
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise ValueError(
                f"line {number} is not a valid age private key (bad encoding or checksum)"
            ) from None
    if not identities:
        raise ValueError("holds no private key (AGE-SECRET-KEY-1... or an SSH private key)")
    return identities


def identities_of(secret: SecretStr | None) -> list[Identity]:
    """The identities held by a secret (`encryption.identity`), or [] without one."""
    return parse_identities(secret.get_secret_value()) if secret is not None else []


def public_keys(identities: Sequence[Identity]) -> set[str]:
    """The `age1...` public keys of the x25519 identities (pyrage cannot derive an SSH
    identity's public key)."""
    return {str(i.to_public()) for i in identities if isinstance(i, x25519.Identity)}


def can_open(recipients: Sequence[str], identities: Sequence[Identity]) -> bool | None:
    """Whether one of `identities` is one of `recipients`; None when that is not known
    before decrypting (an SSH identity)."""
    if public_keys(identities) & {normalize_recipient(r) for r in recipients}:
        return True
    if any(not isinstance(i, x25519.Identity) for i in identities):
        return None
    return False


def short_key(key: str) -> str:
    """A recipient for tables: `age1qyqs...x3k8`, `ssh-ed25519 ops@host`."""
    parts = key.split()
    if len(parts) >= 2 and parts[0].startswith("ssh-"):
        return f"{parts[0]} {parts[2] if len(parts) > 2 else '...' + parts[1][-8:]}"
    return f"{key[:9]}...{key[-4:]}" if len(key) > 20 else key


# -- streams ----------------------------------------------------------------------------------


class _Guarded(io.RawIOBase):
    """Passes reads or writes to a Python stream, remembering the first exception it raised:
    pyrage turns such an exception into its own error, losing its type (a transient S3
    fault must stay a TransientStoreError, for the retries)."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        try:
            return self._inner.read(size)
        except BaseException as exc:
            self.error = self.error or exc
            raise

    def write(self, data: Any) -> int:  # type: ignore[override]
        try:
            self._inner.write(data)
        except BaseException as exc:
            self.error = self.error or exc
            raise
        return len(data)


class _Aborted(Exception):
    """The writing side gave up: the encryption thread stops reading."""


class _EncryptingWriter(io.RawIOBase):
    """The writer `encrypting_writer` yields. Plaintext written here waits in a bounded
    in-memory queue for the encryption thread; the ciphertext it produces waits in another
    queue until the next `write` (or `finish`) passes it to the sink, in the writing thread.

    So the thread that runs pyrage (which holds the GIL while it encrypts) never blocks on
    I/O: woken when a batch of plaintext is there, it encrypts all of it (about 800 MB/s on
    the benchmark machine, callbacks included) and waits again on the empty queue, which
    releases the GIL. Batches keep the two threads from handing the GIL to each other for
    every 8 KiB that pyrage reads. Sink errors arise in the writing thread, with their own
    type.
    """

    def __init__(
        self, sink: IO[bytes], recipients: Sequence[Recipient], limit: int, batch: int
    ) -> None:
        super().__init__()
        self._sink = sink
        self._limit = limit
        self._batch = min(batch, limit)
        self._cond = threading.Condition(threading.Lock())
        self._plain: deque[memoryview] = deque()
        self._plain_bytes = 0
        self._eof = False
        self._aborted = False
        self._cipher: deque[bytes] = deque()
        self._done = False
        self._failure: BaseException | None = None
        # who waits on the condition: the writer for room, the encryption thread for data
        self._writer_waits = False
        self._reader_waits = False
        reader = SimpleNamespace(read=self._read_plain)
        writer = SimpleNamespace(write=self._put_cipher, flush=lambda: None)
        self._thread = threading.Thread(
            target=self._encrypt,
            args=(reader, writer, list(recipients)),
            name="age-encrypt",
            daemon=True,
        )
        self._thread.start()

    # -- the writing thread

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        chunk = memoryview(bytes(data))  # the caller may reuse its buffer
        with self._cond:
            while self._plain_bytes >= self._limit and not self._done:
                self._writer_waits = True
                self._cond.wait()
                self._writer_waits = False
            if self._done:
                self._raise_failure()
            self._plain.append(chunk)
            self._plain_bytes += len(chunk)
            if self._reader_waits and self._plain_bytes >= self._batch:
                self._cond.notify()
        if self._cipher:
            self._drain()
        return len(chunk)

    def _drain(self) -> None:
        while True:
            with self._cond:
                if not self._cipher:
                    return
                piece = self._cipher.popleft()
            self._sink.write(piece)

    def finish(self) -> None:
        """End of the plaintext: wait for the last chunk and pass all of it to the sink."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()
        while True:
            with self._cond:
                while not self._cipher and not self._done:
                    self._writer_waits = True
                    self._cond.wait()
                    self._writer_waits = False
                finished = self._done and not self._cipher
            if finished:
                break
            self._drain()
        self._thread.join()
        if self._failure is not None:
            self._raise_failure()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify_all()
        self._thread.join()

    def _raise_failure(self) -> None:
        failure = self._failure
        if isinstance(failure, pyrage.EncryptError):
            raise OperationFailed(f"age encryption failed: {failure}") from None
        raise OperationFailed(f"age encryption stopped: {failure!r}")

    # -- the encryption thread (pyrage calls read and write)

    def _encrypt(self, reader: Any, writer: Any, recipients: list[Recipient]) -> None:
        try:
            pyrage.encrypt_io(reader, writer, recipients)
        except BaseException as exc:
            self._failure = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _read_plain(self, size: int = 1 << 16) -> bytes:
        with self._cond:
            while not self._plain and not self._eof and not self._aborted:
                self._reader_waits = True
                self._cond.wait()
                self._reader_waits = False
            if self._aborted:
                raise _Aborted()
            if not self._plain:
                return b""  # end of file
            head = self._plain[0]
            taken = head[:size] if size > 0 else head
            if len(taken) == len(head):
                self._plain.popleft()
            else:
                self._plain[0] = head[len(taken) :]
            self._plain_bytes -= len(taken)
            if self._writer_waits and self._plain_bytes <= self._limit // 2:
                self._cond.notify()
            return taken.tobytes()

    def _put_cipher(self, data: bytes) -> int:
        with self._cond:
            self._cipher.append(data)
            if self._writer_waits and self._eof:  # finish() waits for every piece
                self._cond.notify()
        return len(data)


@contextlib.contextmanager
def encrypting_writer(
    sink: IO[bytes],
    recipients: Sequence[Recipient],
    *,
    limit: int = 8 << 20,
    batch: int = 1 << 20,
) -> Iterator[IO[bytes]]:
    """A binary writer whose bytes reach `sink` encrypted to `recipients` (age, binary).

    The age file is complete in `sink` when the block ends normally. If the block raises,
    encryption stops (what reached `sink` is no valid age file) and the exception
    propagates: the caller discards the object, as a store's writer does. At most about
    `limit` bytes of plaintext and as much ciphertext wait in memory; the encryption thread
    is woken for `batch` bytes at least (or the end).
    """
    if not recipients:
        raise ValueError("encryption needs at least one recipient")
    writer = _EncryptingWriter(sink, recipients, limit, batch)
    try:
        yield writer  # type: ignore[misc]
    except BaseException:
        writer.abort()
        raise
    writer.finish()


def decrypt_to(source: IO[bytes], sink: IO[bytes], identities: Sequence[Identity]) -> None:
    """Decrypt the age stream `source` into `sink`, chunk by chunk (each 64 KiB chunk is
    authenticated before it is written). Raises NoMatchingIdentity when no identity opens
    the header, AgeAuthenticationFailed when the content does not authenticate, and the
    source's or sink's own exception when they fail."""
    reader, writer = _Guarded(source), _Guarded(sink)
    try:
        pyrage.decrypt_io(reader, writer, list(identities))
    except (pyrage.DecryptError, OSError) as exc:
        own = reader.error or writer.error
        if own is not None:
            raise own from None
        if "No matching keys" in str(exc):
            raise NoMatchingIdentity(str(exc)) from None
        raise AgeAuthenticationFailed(f"age decryption failed: {exc}") from None
    own = reader.error or writer.error  # pyrage drops an error of its last, buffered write
    if own is not None:
        raise own


class NoMatchingIdentity(Exception):
    """Raised by decrypt_to: no identity opens the age header (the caller knows whether
    that means a wrong key or a changed header, and says which)."""
