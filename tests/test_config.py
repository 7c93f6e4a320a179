"""The configuration file as an operator writes it: defaults, env overrides, errors naming keys."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from spectron_backup.config import load_config
from spectron_backup.errors import UsageError

MINIMAL = "source: {url: 'ws://surreal:8000', username: root}\ntarget: {url: 's3://spectron-backups/prod'}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.source.control_namespace == "spectron"
    assert config.backups.parallelism == 4
    assert config.backups.compression_level == 3
    keep = config.backups.keep
    assert (keep.daily_days, keep.weekly_days, keep.monthly_days, keep.min_keep) == (30, 365, 0, 3)
    assert keep.incomplete_grace == timedelta(hours=24)
    assert config.drill.selection == "latest" and config.drill.window_days == 30
    assert config.sweep.max_delete_fraction == 0.5
    assert config.encryption.recipients == []


def test_environment_overrides_the_file_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPECTRON_BACKUP__SOURCE__PASSWORD", "pa55word")
    monkeypatch.setenv("SPECTRON_BACKUP__BACKUPS__PARALLELISM", "2")
    config = load_config(write(tmp_path, MINIMAL))
    assert config.source.url == "ws://surreal:8000"
    assert (
        config.source.password is not None
        and config.source.password.get_secret_value() == "pa55word"
    )
    assert config.backups.parallelism == 2


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRON_BACKUP_CONFIG", str(write(tmp_path, MINIMAL)))
    assert load_config().target.url == "s3://spectron-backups/prod"


def test_secrets_never_print(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRON_BACKUP__SOURCE__PASSWORD", "pa55word")
    monkeypatch.setenv(
        "SPECTRON_BACKUP__ALERTS__WEBHOOK_URL", "https://hooks.example/T000/secret-token"
    )
    config = load_config(write(tmp_path, MINIMAL))
    shown = repr(config) + str(config) + config.model_dump_json()
    assert "pa55word" not in shown
    assert "secret-token" not in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("target: {url: 'file:///x'}\n", "source: required"),
        (MINIMAL + "backups: {paralelism: 2}\n", "backups.paralelism: unknown key"),
        (MINIMAL + "backups: {parallelism: 0}\n", "backups.parallelism"),
        (
            MINIMAL.replace("s3://spectron-backups/prod", "ftp://x"),
            "target.url: 'ftp://x' is not a backup target",
        ),
        (
            MINIMAL + "backups: {keep: {incomplete_grace: soon}}\n",
            "backups.keep.incomplete_grace: 'soon' is not a duration",
        ),
        (
            MINIMAL + "backups: {keep: {incomplete_grace: 0s}}\n",
            "backups.keep.incomplete_grace: 0s is too short: a backup still being written "
            "could be collected; use at least 1h",
        ),
        (MINIMAL + "target: [\n", "not valid YAML at line"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_errors_name_the_key_and_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        load_config(write(tmp_path, text))
    assert expected in str(caught.value)
    assert caught.value.exit_code == 2


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
