"""The configuration file (design section 10), validated by pydantic.

One YAML file (`--config`, or `SPECTRON_BACKUP_CONFIG`), overridable key by key with
environment variables `SPECTRON_BACKUP__SECTION__KEY` (for example
`SPECTRON_BACKUP__SOURCE__PASSWORD`), which win over the file. Passwords, keys and the
webhook URL are secret types: they print as `**********` everywhere.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from spectron_backup.durations import format_duration, parse_duration
from spectron_backup.encryption import (
    Identity,
    identities_of,
    normalize_recipient,
    parse_identities,
    parse_recipient,
)
from spectron_backup.errors import UsageError
from spectron_backup.policies import PolicySet, parse_policies, policy_problems
from spectron_backup.streams import DEFAULT_ZSTD_LEVEL
from spectron_backup.urls import redact_url

CONFIG_ENV = "SPECTRON_BACKUP_CONFIG"
ENV_PREFIX = "SPECTRON_BACKUP__"

Duration = Annotated[timedelta, BeforeValidator(lambda v: parse_duration(v))]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContextFilter(_Section):
    include: list[str] = Field(
        default_factory=list, description="Context ids to back up; empty = all"
    )
    exclude: list[str] = Field(default_factory=list)

    def selects(self, context_id: str) -> bool:
        return (not self.include or context_id in self.include) and context_id not in self.exclude


class SourceConfig(_Section):
    url: str = Field(
        description="The Spectron SurrealDB: ws://host:8000, surrealkv:///path, mem://"
    )
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    auth_namespace: str | None = None
    control_namespace: str = "spectron"
    control_database: str = "metadata"
    jobqueue_database: str = "_jobqueue"
    contexts: ContextFilter = Field(default_factory=ContextFilter)


class S3Location(_Section):
    url: str
    endpoint_url: str | None = None
    region: str = "us-east-1"


class TargetConfig(S3Location):
    url: str = Field(description="Where backups go: s3://bucket/prefix or file:///path")
    sse: Literal["AES256", "aws:kms"] | None = None
    kms_key_id: str | None = None
    #: attempts per S3 request (botocore standard retries) before the task itself retries
    max_attempts: int = Field(4, ge=1, le=20)

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if not url.startswith(("s3://", "file://")):
            raise ValueError(
                f"{redact_url(url)!r} is not a backup target: use s3://bucket/prefix or file:///path"
            )
        return url


class ReplicationConfig(_Section):
    """Cross-region replication of the document bucket: `bucket ensure` configures it only
    when both keys are set; otherwise it is only reported."""

    destination: str | None = Field(
        None, description="Destination bucket: its name or arn:aws:s3:::name (versioned)"
    )
    role: str | None = Field(
        None, description="IAM role S3 assumes to replicate: arn:aws:iam::ACCOUNT:role/NAME"
    )
    storage_class: str | None = Field(None, description="Storage class of the replicas")

    @model_validator(mode="after")
    def _both_or_neither(self) -> ReplicationConfig:
        if bool(self.destination) != bool(self.role):
            missing = "role" if self.destination else "destination"
            raise ValueError(
                f"needs both destination and role, but {missing} is not set "
                "(set both to have `bucket ensure` configure replication, or neither)"
            )
        if self.role and not self.role.startswith("arn:"):
            raise ValueError(f"role {self.role!r} is not an IAM role ARN (arn:aws:iam::...)")
        return self


class GuardConfig(_Section):
    #: the daily `bucket-guard` flow also makes the changes `bucket ensure` would make
    ensure: bool = False


class DocumentsConfig(S3Location):
    #: the guard's lifecycle rule expires noncurrent versions after this many days
    noncurrent_days: int = Field(90, ge=1, le=36500)
    #: ... and aborts multipart uploads left incomplete for this many days
    abort_multipart_days: int = Field(7, ge=1, le=36500)
    replication: ReplicationConfig = Field(default_factory=ReplicationConfig)
    guard: GuardConfig = Field(default_factory=GuardConfig)


MIN_INCOMPLETE_GRACE = timedelta(hours=1)


class KeepConfig(_Section):
    daily_days: int = Field(30, ge=0)
    weekly_days: int = Field(365, ge=0)
    monthly_days: int = Field(0, ge=0)
    yearly_days: int = Field(0, ge=0)
    min_keep: int = Field(3, ge=1)
    incomplete_grace: Duration = timedelta(hours=24)

    @field_validator("incomplete_grace")
    @classmethod
    def _grace(cls, grace: timedelta) -> timedelta:
        # Garbage is what has not written for this long: shorter, and a backup that pauses
        # between two databases (or a clock a little off) loses objects it is still writing.
        if grace < MIN_INCOMPLETE_GRACE:
            raise ValueError(
                f"{format_duration(grace)} is too short: a backup still being written could "
                "be collected; use at least 1h (default 24h)"
            )
        return grace


class BackupsConfig(_Section):
    parallelism: int = Field(4, ge=1, le=64)
    compression_level: int = Field(DEFAULT_ZSTD_LEVEL, ge=1, le=22)
    #: retries of a database's backup after a transient fault, with exponential backoff
    retries: int = Field(3, ge=0, le=20)
    retry_delay_seconds: float = Field(10, ge=0)
    keep: KeepConfig = Field(default_factory=KeepConfig)


class DrillConfig(_Section):
    scratch_url: str | None = None
    #: sign-in on a scratch server (like `source`); the password and token are secrets, e.g.
    #: SPECTRON_BACKUP__DRILL__SCRATCH_PASSWORD
    scratch_username: str | None = None
    scratch_password: SecretStr | None = None
    scratch_token: SecretStr | None = None
    scratch_auth_namespace: str | None = None
    selection: Literal["latest", "random"] = "latest"
    window_days: int = Field(30, ge=1)


def _recipient(key: str) -> str:
    parse_recipient(key)  # a ValueError that never repeats a private key
    return normalize_recipient(key)


class EncryptionConfig(_Section):
    """Client-side encryption with age (design section 4). The backup host needs only the
    recipients; the identity is needed only where restores and drills run."""

    recipients: list[Annotated[str, AfterValidator(_recipient)]] = Field(
        default_factory=list,
        description="age public keys (age1...) or SSH public keys; empty = not encrypted",
    )
    #: the private key(s): an age identity file's text, or an unencrypted OpenSSH key
    identity: SecretStr | None = None
    #: name of a Prefect Secret block holding the identity (read by the drill flow and by
    #: `restore`, when `identity` is not set)
    identity_block: str | None = None

    @field_validator("identity")
    @classmethod
    def _identity(cls, identity: SecretStr | None) -> SecretStr | None:
        if identity is not None:
            parse_identities(identity.get_secret_value())  # never repeats the key
        return identity

    def identities(self) -> list[Identity]:
        """The parsed `identity` (validated at load), or [] when not set."""
        return identities_of(self.identity)


class AlertsConfig(_Section):
    # A Slack webhook URL is itself a credential.
    webhook_url: SecretStr | None = None


class SweepTablesConfig(_Section):
    """The sweep's table names (design section 2); real deployments may differ."""

    entity: str = Field("entity", min_length=1)
    attribute: str = Field("attribute", min_length=1)
    relation: str = Field("relates_to", min_length=1)
    instruction: str = Field("instruction", min_length=1)
    uncertainty: str = Field("uncertainty", min_length=1)


class SweepFieldsConfig(_Section):
    """The sweep's field names (design section 2)."""

    valid_until: str = Field("valid_until", min_length=1)
    created_at: str = Field("created_at", min_length=1)
    memory_category: str = Field("memory_category", min_length=1)
    #: the record's scope: links to rows whose `scope_paths` field is one AND-clause of paths
    scope: str = Field("scope", min_length=1)
    scope_paths: str = Field("paths", min_length=1)
    #: the attribute's link to its entity
    attribute_entity: str = Field("entity", min_length=1)


#: records of a table the sweep's guard always lets go (`sweep.guard_allowance`)
GUARD_ALLOWANCE = 10


class SweepConfig(_Section):
    batch_size: int = Field(1000, ge=1, le=100_000)
    max_delete_fraction: float = Field(0.5, gt=0, le=1)
    #: ... but deleting this many records of a table is always allowed (a table where 1 of 1
    #: record expired is a quiet Context, not a wrong clock)
    guard_allowance: int = Field(GUARD_ALLOWANCE, ge=0)
    valid_until_grace: Duration = timedelta(0)
    tables: SweepTablesConfig = Field(default_factory=SweepTablesConfig)
    fields: SweepFieldsConfig = Field(default_factory=SweepFieldsConfig)


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    source: SourceConfig
    target: TargetConfig
    documents: DocumentsConfig | None = None
    backups: BackupsConfig = Field(default_factory=BackupsConfig)
    drill: DrillConfig = Field(default_factory=DrillConfig)
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    #: Spectron's per-scope memory TTL policies (design section 7); kept raw, validated here
    #: by `policies.parse_policies` and parsed with `policies()`.
    retention: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("retention")
    @classmethod
    def _retention_rules(cls, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        _, problems = policy_problems(rules)
        if problems:
            raise ValueError("; ".join(problems))
        return rules

    def policies(self) -> PolicySet:
        """The `retention:` rules, parsed (validated at load, so this does not fail)."""
        return parse_policies(self.retention)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, which is passed in as init values.
        return (env_settings, init_settings)


def _describe(error: dict[str, Any]) -> str:
    where = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
    ).lstrip(".")
    where = where or "(top level)"
    kind = error["type"]
    if kind == "missing":
        return f"{where}: required, but not set"
    if kind == "extra_forbidden":
        return f"{where}: unknown key (check its spelling against the README's example)"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def load_config(
    path: Path | str | None = None, *, overrides: dict[str, Any] | None = None
) -> Config:
    """Read, merge and validate the configuration; UsageError names every bad key."""
    path = path or os.environ.get(CONFIG_ENV)
    data: dict[str, Any] = {}
    origin = "the environment"
    if path:
        origin = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"configuration file {path} does not exist") from None
        except OSError as exc:
            raise UsageError(f"cannot read configuration file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark else ""
            raise UsageError(
                f"configuration file {path} is not valid YAML{at}: {getattr(exc, 'problem', exc)}"
            ) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UsageError(
                f"configuration file {path} must be a mapping of sections (source:, target:, ...)"
            )
        data = loaded
    for key, value in (overrides or {}).items():
        section, _, name = key.partition(".")
        data.setdefault(section, {})[name] = value
    try:
        return Config(**data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        hint = (
            "" if path else " (no configuration file: pass --config FILE or set " + CONFIG_ENV + ")"
        )
        raise UsageError(f"configuration ({origin}){hint}: {problems}") from None
    except SettingsError as exc:  # an environment override of a list or section, not JSON
        raise UsageError(
            f"configuration (the environment): {exc}; a list or a section is given as JSON, "
            """for example SPECTRON_BACKUP__SOURCE__CONTEXTS__INCLUDE='["acme-prod"]'"""
        ) from None
