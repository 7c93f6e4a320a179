"""Operator mistakes found before anything is written or reported as fine: a `seed` whose
document store cannot be written, and reading commands on a file target that does not exist.
Through the real command line, against an embedded SurrealDB and moto's S3 server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest

from spectron_backup.surreal import connect
from tests.conftest import run_cli
from tests.s3server import S3_TEST_ENV, moto_s3_server

SEED = ("seed", "--contexts", "1", "--scale", "0.05", "--embedding-width", "8")


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error:` line of a refused command (exit status 2, nothing else printed)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def namespaces(url: str) -> list[str]:
    with connect(url) as conn:
        return sorted(conn.namespaces())


# -- seed: the document store is checked before the SurrealDB is written ---------------------


def test_seed_into_a_missing_bucket_writes_nothing_and_names_documents(
    tmp_path: Path, s3_server: str, s3_bucket: str, s3_client
) -> None:
    target = f"surrealkv://{tmp_path / 'spectron'}"
    missing = "no-such-bucket-for-seed"
    refused = run_cli(
        *SEED,
        "--target",
        target,
        "--documents",
        f"s3://{missing}/docs",
        "--documents-endpoint-url",
        s3_server,
    )
    line = one_error(refused)
    assert f"--documents s3://{missing}/docs" in line
    assert f"bucket {missing} does not exist" in line and "correct the --documents URL" in line
    assert "target URL" not in line
    assert namespaces(target) == []  # nothing seeded

    # The operator fixes --documents and reruns: the store is still empty, so it works.
    fixed = run_cli(
        *SEED,
        "--target",
        target,
        "--documents",
        f"s3://{s3_bucket}/docs",
        "--documents-endpoint-url",
        s3_server,
        "--json",
    )
    assert fixed.returncode == 0, fixed.stderr
    seeded = json.loads(fixed.stdout)
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert len(keys) == seeded["documents"] > 0
    assert all(key.startswith("docs/docs/") for key in keys), keys  # the probe is gone


def test_seed_with_rejected_credentials_writes_nothing(tmp_path: Path) -> None:
    # moto checks credentials after its first request (which creates the bucket).
    with moto_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "1"}) as endpoint:
        admin = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        admin.create_bucket(Bucket="documents")
        admin.close()
        target = f"surrealkv://{tmp_path / 'spectron'}"
        wrong = {**S3_TEST_ENV, "AWS_ACCESS_KEY_ID": "AKIAWRONG", "AWS_SECRET_ACCESS_KEY": "nope"}
        refused = run_cli(
            *SEED,
            "--target",
            target,
            "--documents",
            "s3://documents",
            "--documents-endpoint-url",
            endpoint,
            env=wrong,
        )
    line = one_error(refused)
    assert "--documents s3://documents cannot be written" in line
    assert "access to bucket documents" in line and "check the credentials" in line
    assert "nope" not in refused.stderr + refused.stdout
    assert namespaces(target) == []


def test_seed_into_a_document_directory_that_cannot_exist_writes_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "afile").write_text("in the way")
    target = f"surrealkv://{tmp_path / 'spectron'}"
    refused = run_cli(
        *SEED, "--target", target, "--documents", (tmp_path / "afile" / "docs").as_uri()
    )
    line = one_error(refused)
    assert f"--documents directory {tmp_path / 'afile' / 'docs'} cannot be created" in line
    assert namespaces(target) == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("--documents", "ftp://host/docs"), "unsupported --documents URL scheme 'ftp'"),
        (
            ("--documents", "file:///tmp/docs", "--documents-endpoint-url", "http://127.0.0.1:1"),
            "--documents-endpoint-url applies to an s3:// --documents store only",
        ),
    ],
)
def test_seed_option_mistakes_name_the_option(
    tmp_path: Path, arguments: tuple[str, ...], expected: str
) -> None:
    target = f"surrealkv://{tmp_path / 'spectron'}"
    assert expected in one_error(run_cli(*SEED, "--target", target, *arguments))
    assert not (tmp_path / "spectron").exists()


# -- reading commands on a file target that does not exist ------------------------------------


def config_with_target(tmp_path: Path, target: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"source: {{url: 'mem://'}}\ntarget: {{url: '{target.as_uri()}'}}\n")
    return config


@pytest.mark.parametrize(
    "command",
    [
        ("list",),
        ("list", "--json"),
        ("prune", "--dry-run"),
        ("prune",),
        ("restore", "latest", "--target", "mem://"),
    ],
)
def test_reading_a_target_directory_that_does_not_exist_is_an_error(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "bakcups"
    config = config_with_target(tmp_path, typo)
    result = run_cli(*command, "--config", str(config))
    line = one_error(result)
    assert f"backup target {typo} does not exist" in line and "check target.url" in line
    assert result.stdout == ""
    assert not typo.exists()  # reading never creates it


def test_list_of_an_existing_empty_target_says_no_backups_yet(tmp_path: Path) -> None:
    (tmp_path / "backups").mkdir()
    config = config_with_target(tmp_path, tmp_path / "backups")
    result = run_cli("list", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "no backups yet" in result.stderr
    listed = run_cli("list", "--config", str(config), "--json")
    assert json.loads(listed.stdout)["backups"] == []


def test_a_drill_of_a_target_directory_that_does_not_exist_names_it(tmp_path: Path) -> None:
    """The drill runs as a Prefect flow (its log lines may come first): exit 2, and the last
    line names the directory instead of "no backup to drill"."""
    typo = tmp_path / "bakcups"
    result = run_cli("drill", "--config", str(config_with_target(tmp_path, typo)))
    assert result.returncode == 2, result.stderr
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: ") and f"backup target {typo} does not exist" in last
    assert not typo.exists()
