"""The drill's and restore's identity from a Prefect Secret block (`encryption.identity_block`):
Prefect stays at this edge, the core receives a SecretStr like the one of the configuration."""

from __future__ import annotations

from pydantic import SecretStr

from spectron_backup.config import EncryptionConfig
from spectron_backup.encryption import parse_identities
from spectron_backup.errors import UsageError


def load_identity(encryption: EncryptionConfig) -> SecretStr | None:
    """`encryption.identity` when set, else the value of the Secret block named by
    `encryption.identity_block`, else None. Errors name the block, never its value."""
    if encryption.identity is not None or not encryption.identity_block:
        return encryption.identity
    from prefect.blocks.system import Secret

    name = encryption.identity_block
    try:
        value = Secret.load(name).get()  # type: ignore[union-attr]
    except ValueError as exc:
        if "Unable to find block" not in str(exc):
            raise
        raise UsageError(
            f"encryption.identity_block: there is no Prefect Secret block named {name!r} "
            "(create it with the private key as its value, or set encryption.identity)"
        ) from None
    if not isinstance(value, str):
        raise UsageError(
            f"encryption.identity_block: the Secret block {name!r} must hold the private key "
            "as a string"
        )
    try:
        parse_identities(value)
    except ValueError as exc:
        raise UsageError(f"encryption.identity_block: the Secret block {name!r} {exc}") from None
    return SecretStr(value)
