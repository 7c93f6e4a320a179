"""The document bucket guard as an operator uses it: `spectron-backup bucket ...` and the
`bucket-guard` flow, on moto's S3 server over HTTP. What each test asserts is read back from
the bucket with a plain boto3 client, not from the guard's own report."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from flows.bucket_guard import bucket_guard
from spectron_backup.bucket import GUARD_RULE_ID, GuardFailed, open_document_bucket
from spectron_backup.config import DocumentsConfig
from spectron_backup.errors import OperationFailed, UsageError
from tests.flow_runs import HOOK_SECRET, Webhook, artifacts_of, logs_of, wait_for_event
from tests.s3server import S3_TEST_ENV, moto_s3_server

#: rules of somebody else, in the shapes S3 knows; ensure must leave every one as it was
OTHER_RULES = [
    {
        "ID": "tmp-cleanup",
        "Filter": {"Prefix": "tmp/"},
        "Status": "Enabled",
        "Expiration": {"Days": 3},
    },
    {
        "ID": "archive-tagged",
        "Filter": {"And": {"Prefix": "archive/", "Tags": [{"Key": "tier", "Value": "cold"}]}},
        "Status": "Disabled",
        "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}],
    },
]


# -- helpers --------------------------------------------------------------------------------------


def write_config(
    tmp_path: Path,
    documents: dict[str, Any],
    *,
    webhook: Webhook | None = None,
    name: str = "config.yaml",
) -> Path:
    data: dict[str, Any] = {
        "source": {"url": "mem://"},
        "target": {"url": f"file://{tmp_path / 'target'}"},
        "documents": documents,
    }
    if webhook is not None:
        data["alerts"] = {"webhook_url": webhook.url}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def docs(tmp_path: Path, s3_server: str, s3_bucket: str) -> Path:
    """The configuration of a bare bucket (the fixture's) as Spectron's document bucket."""
    return write_config(tmp_path, {"url": f"s3://{s3_bucket}", "endpoint_url": s3_server})


def lifecycle(client: Any, bucket: str) -> list[dict[str, Any]]:
    try:
        return client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except client.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return []


def versioning(client: Any, bucket: str) -> str | None:
    return client.get_bucket_versioning(Bucket=bucket).get("Status")


def enable_versioning(client: Any, bucket: str) -> None:
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def history(client: Any, bucket: str, key: str) -> tuple[list[dict], list[dict]]:
    page = client.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [v for v in page.get("Versions", []) if v["Key"] == key]
    markers = [m for m in page.get("DeleteMarkers", []) if m["Key"] == key]
    return versions, markers


def body(client: Any, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def next_second() -> None:
    """Sleep into the next wall-clock second: S3 (and moto) stamp versions to the second."""
    time.sleep(1.02 - time.time() % 1)


def between(earlier: datetime, later: datetime) -> str:
    assert earlier < later, (earlier, later)
    return (earlier + (later - earlier) / 2).isoformat()


# -- check and ensure -----------------------------------------------------------------------------


def test_check_on_a_bare_bucket_reports_everything_missing(cli, docs: Path) -> None:
    result = cli("bucket", "check", "--config", str(docs), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    findings = {f["name"]: f for f in report["findings"]}
    assert report["ok"] is False and report["versioning"] == "Disabled"
    assert report["missing"] == ["versioning", "noncurrent_expiration", "abort_multipart"]
    assert "90 days" in findings["noncurrent_expiration"]["detail"]
    # Replication is reported; it is required only when the configuration names it.
    assert findings["replication"]["ok"] is False and findings["replication"]["required"] is False
    assert "not configured" in findings["replication"]["detail"]

    human = cli("bucket", "check", "--config", str(docs))
    assert human.returncode == 1 and human.stdout == ""
    assert human.stderr.count("MISSING") == 3
    assert "`spectron-backup bucket ensure` would: enable versioning; add rule" in human.stderr


def test_ensure_fixes_it_keeps_other_rules_and_a_second_ensure_changes_nothing(
    cli, docs: Path, s3_client: Any, s3_bucket: str
) -> None:
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": OTHER_RULES}
    )
    before = lifecycle(s3_client, s3_bucket)

    dry = cli("bucket", "ensure", "--config", str(docs), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert [c["setting"] for c in planned["changes"]] == ["versioning", "lifecycle"]
    assert versioning(s3_client, s3_bucket) is None  # the dry run changed nothing
    assert lifecycle(s3_client, s3_bucket) == before

    done = cli("bucket", "ensure", "--config", str(docs), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["changes"] == planned["changes"] and report["after"]["ok"] is True
    assert versioning(s3_client, s3_bucket) == "Enabled"
    rules = lifecycle(s3_client, s3_bucket)
    assert rules[: len(before)] == before  # every other rule kept, as it was, where it was
    [ours] = [r for r in rules if r.get("ID") == GUARD_RULE_ID]
    assert ours["Status"] == "Enabled"
    assert ours["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert ours["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert len(rules) == len(before) + 1

    check = cli("bucket", "check", "--config", str(docs), "--json")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["missing"] == []

    again = cli("bucket", "ensure", "--config", str(docs), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changes"] == []
    assert lifecycle(s3_client, s3_bucket) == rules
    human = cli("bucket", "ensure", "--config", str(docs))
    assert human.returncode == 0 and "nothing to change" in human.stderr


def test_ensure_updates_its_own_rule_in_place(
    docs: Path, tmp_path: Path, s3_server: str, s3_client: Any, s3_bucket: str
) -> None:
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": OTHER_RULES}
    )
    guard = open_document_bucket(DocumentsConfig(url=f"s3://{s3_bucket}", endpoint_url=s3_server))
    guard.ensure()
    # The guard's rule goes last; somebody adds a rule after it; then the days change.
    rules = lifecycle(s3_client, s3_bucket)
    later = {
        "ID": "later",
        "Filter": {"Prefix": "x/"},
        "Status": "Enabled",
        "Expiration": {"Days": 9},
    }
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": [*rules, later]}
    )
    shorter = open_document_bucket(
        DocumentsConfig(
            url=f"s3://{s3_bucket}",
            endpoint_url=s3_server,
            noncurrent_days=30,
            abort_multipart_days=2,
        )
    )
    assert shorter.check().finding("noncurrent_expiration").ok is False
    plan, after = shorter.ensure()
    assert [c.action for c in plan.changes] == [f"update rule {GUARD_RULE_ID}"]
    assert after.ok
    updated = lifecycle(s3_client, s3_bucket)
    assert [r.get("ID") for r in updated] == [
        "tmp-cleanup",
        "archive-tagged",
        GUARD_RULE_ID,
        "later",
    ]
    assert updated[2]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert updated[2]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    assert updated[:2] == OTHER_RULES and updated[3] == later
    # The 90-day guard now sees a rule expiring noncurrent versions sooner: a warning.
    assert any("30 days" in w for w in guard.check().warnings)
    guard.close()
    shorter.close()


def test_rules_of_the_bucket_that_already_do_the_job_are_enough(
    s3_server: str, s3_client: Any, s3_bucket: str
) -> None:
    theirs = {
        "ID": "house-rule",
        "Prefix": "",  # the old form, without Filter
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 90},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": [theirs]}
    )
    enable_versioning(s3_client, s3_bucket)
    guard = open_document_bucket(DocumentsConfig(url=f"s3://{s3_bucket}", endpoint_url=s3_server))
    status = guard.check()
    assert status.ok, status.to_json()
    assert "house-rule" in status.finding("noncurrent_expiration").detail
    plan, _ = guard.ensure()
    assert plan.changes == []
    assert lifecycle(s3_client, s3_bucket) == [theirs]

    # Wanting more days than the house rule keeps, the guard adds its own rule, in the old
    # form as well (one configuration should not mix both forms); S3 applies the shortest
    # expiration, so the house rule's 90 days still win: a warning says so.
    guard = open_document_bucket(
        DocumentsConfig(
            url=f"s3://{s3_bucket}/spectron", endpoint_url=s3_server, noncurrent_days=120
        )
    )
    plan, after = guard.ensure()
    assert after.ok and [c.setting for c in plan.changes] == ["lifecycle"]
    assert any("house-rule" in w and "90 days" in w for w in after.warnings)
    rules = lifecycle(s3_client, s3_bucket)
    assert rules[0] == theirs
    assert rules[1]["ID"] == GUARD_RULE_ID and rules[1]["Prefix"] == "spectron/"
    assert "Filter" not in rules[1]
    guard.close()


def test_a_whole_bucket_rule_keeping_versions_longer_is_never_shortened(
    cli, tmp_path: Path, s3_server: str, s3_client: Any, s3_bucket: str
) -> None:
    """Where lifecycle rules overlap, S3 applies the shortest expiration: a 90-day guard rule
    next to a 365-day rule of the bucket would delete versions 90 to 365 days old."""
    keep_a_year = {
        "ID": "keep-a-year",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 365},
    }
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": [keep_a_year]}
    )
    config = str(
        write_config(tmp_path, {"url": f"s3://{s3_bucket}/docs", "endpoint_url": s3_server})
    )

    check = cli("bucket", "check", "--config", config, "--json")
    report = json.loads(check.stdout)
    findings = {f["name"]: f for f in report["findings"]}
    assert findings["noncurrent_expiration"]["ok"] is True
    assert "keep-a-year" in findings["noncurrent_expiration"]["detail"]
    assert "365 days" in findings["noncurrent_expiration"]["detail"]
    # The rule does not abort multipart uploads, and the guard's rule may not go next to it.
    assert report["missing"] == ["versioning", "abort_multipart"]
    assert "AbortIncompleteMultipartUpload" in findings["abort_multipart"]["detail"]

    done = cli("bucket", "ensure", "--config", config, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [c["setting"] for c in result["changes"]] == ["versioning", "lifecycle"]
    # the guard's rule only aborts multipart uploads: keep-a-year's 365 days stay in force
    guard = {
        "ID": "spectron-backup-guard",
        "Filter": {"Prefix": "docs/"},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    assert lifecycle(s3_client, s3_bucket) == [keep_a_year, guard]
    assert versioning(s3_client, s3_bucket) == "Enabled"
    check = cli("bucket", "check", "--config", config, "--json")
    assert check.returncode == 0, check.stdout

    again = cli("bucket", "ensure", "--config", config, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changes"] == []
    assert lifecycle(s3_client, s3_bucket) == [keep_a_year, guard]


def test_a_narrower_rule_keeping_versions_longer_stops_ensure_with_the_reason(
    cli, tmp_path: Path, s3_server: str, s3_client: Any, s3_bucket: str
) -> None:
    legal = {
        "ID": "legal-hold",
        "Filter": {"Prefix": "docs/legal/"},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 3650},
    }
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": [legal]}
    )
    enable_versioning(s3_client, s3_bucket)
    documents = {"url": f"s3://{s3_bucket}/docs", "endpoint_url": s3_server}
    config = str(write_config(tmp_path, documents))

    check = cli("bucket", "check", "--config", config, "--json")
    assert check.returncode == 1
    report = json.loads(check.stdout)
    assert report["missing"] == ["noncurrent_expiration", "abort_multipart"]
    detail = report["findings"][1]["detail"]
    assert "legal-hold" in detail and "3650 days" in detail
    assert "documents.noncurrent_days to 3650" in detail
    human = cli("bucket", "check", "--config", config)
    assert "`spectron-backup bucket ensure` changes nothing here" in human.stderr
    assert "note: lifecycle: ensure does not put the guard's rule" in human.stderr

    for extra in (["--dry-run"], []):
        done = cli("bucket", "ensure", "--config", config, *extra)
        assert done.returncode == (0 if extra else 1), done.stderr
        assert "nothing to change" in done.stderr
        assert "note: lifecycle: ensure does not put the guard's rule" in done.stderr
        assert "legal-hold" in done.stderr
        assert lifecycle(s3_client, s3_bucket) == [legal]

    # Following the note: the guard keeps every document's versions that long.
    documents["noncurrent_days"] = 3650
    config = str(write_config(tmp_path, documents, name="longer.yaml"))
    done = cli("bucket", "ensure", "--config", config, "--json")
    assert done.returncode == 0, done.stderr
    rules = lifecycle(s3_client, s3_bucket)
    assert rules[0] == legal and rules[1]["ID"] == GUARD_RULE_ID
    assert rules[1]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 3650}


def test_a_guard_rule_cutting_a_longer_rule_short_is_reported_and_only_lengthened(
    s3_server: str, s3_client: Any, s3_bucket: str
) -> None:
    """The state an older ensure left: its 90-day rule next to a rule keeping a year."""
    keep_a_year = {
        "ID": "keep-a-year",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 365},
    }
    enable_versioning(s3_client, s3_bucket)
    url = f"s3://{s3_bucket}"
    old = open_document_bucket(DocumentsConfig(url=url, endpoint_url=s3_server))
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": [keep_a_year, old.guard_rule()]}
    )
    status = old.check()
    assert status.ok
    assert any("keep-a-year" in w and "365 days" in w for w in status.warnings), status.warnings

    # Fewer days would shorten keep-a-year further: refused. More days shorten nothing.
    for days, updated in ((30, False), (180, True)):
        guard = open_document_bucket(
            DocumentsConfig(url=url, endpoint_url=s3_server, noncurrent_days=days)
        )
        plan, _ = guard.ensure()
        [ours] = [r for r in lifecycle(s3_client, s3_bucket) if r["ID"] == GUARD_RULE_ID]
        assert ours["NoncurrentVersionExpiration"]["NoncurrentDays"] == (180 if updated else 90)
        assert bool(plan.changes) is updated
        assert any("keep-a-year" in n for n in plan.notes) is not updated
        assert lifecycle(s3_client, s3_bucket)[0] == keep_a_year
        guard.close()
    old.close()


def test_newer_noncurrent_versions_count_as_keeping_longer(
    s3_server: str, s3_bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule keeping the newest versions whatever their age keeps at least its days (enough
    for the check), and the guard's plain rule would delete what it keeps. moto drops
    NewerNoncurrentVersions from a NoncurrentVersionExpiration it stores, so the rule comes
    in the lifecycle configuration as S3 answers it (the one read replaced; no write is made)."""
    newest = {
        "ID": "keep-newest",
        "Filter": {"Prefix": "docs/"},
        "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": 90, "NewerNoncurrentVersions": 5},
    }
    enable_versioning(s3_client, s3_bucket)
    for url, covers in ((f"s3://{s3_bucket}/docs", True), (f"s3://{s3_bucket}", False)):
        guard = open_document_bucket(DocumentsConfig(url=url, endpoint_url=s3_server))
        monkeypatch.setattr(guard, "_lifecycle", lambda: {"Rules": [newest]})
        status = guard.check()
        finding = status.finding("noncurrent_expiration")
        assert finding.ok is covers, finding
        if covers:
            assert "keeping the newest 5" in finding.detail
        else:  # the rule is narrower than the whole bucket: the guard's own rule is missing
            assert "keep-newest" in finding.detail and "NewerNoncurrentVersions" in finding.detail
        plan = guard.plan(status)
        if covers:  # only multipart uploads are left for the guard's rule to handle
            [change] = plan.changes
            assert "NoncurrentVersionExpiration" not in change.after
            assert change.after["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
            assert plan.lifecycle["Rules"][0] == newest  # kept as it is
        else:
            assert plan.changes == [] and plan.lifecycle is None
            assert any("keep-newest" in n and "NewerNoncurrentVersions" in n for n in plan.notes)
        guard.close()


def test_apply_refuses_a_lifecycle_configuration_changed_since_the_plan(
    s3_server: str, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": OTHER_RULES}
    )
    enable_versioning(s3_client, s3_bucket)
    guard = open_document_bucket(DocumentsConfig(url=f"s3://{s3_bucket}", endpoint_url=s3_server))
    plan = guard.plan()
    assert [c.setting for c in plan.changes] == ["lifecycle"]

    # Somebody adds a rule between the plan and its application: writing the plan would drop it.
    meanwhile = [
        *OTHER_RULES,
        {
            "ID": "meanwhile",
            "Filter": {"Prefix": "m/"},
            "Status": "Enabled",
            "Expiration": {"Days": 5},
        },
    ]
    s3_client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket, LifecycleConfiguration={"Rules": meanwhile}
    )
    written = lifecycle(s3_client, s3_bucket)
    with pytest.raises(OperationFailed, match="changed while ensure ran: nothing written"):
        guard.apply(plan)
    assert lifecycle(s3_client, s3_bucket) == written

    # Somebody writes right after ensure did (a race no read can close; injected at the
    # request): ensure reads the rules back and says which one is gone.
    plan = guard.plan()
    real = guard.store.request

    def racing(operation: str, what: str, **kwargs: Any) -> Any:
        result = real(operation, what, **kwargs)
        if operation == "put_bucket_lifecycle_configuration":
            rules = [r for r in lifecycle(s3_client, s3_bucket) if r["ID"] != "tmp-cleanup"]
            s3_client.put_bucket_lifecycle_configuration(
                Bucket=s3_bucket, LifecycleConfiguration={"Rules": rules}
            )
        return result

    monkeypatch.setattr(guard.store, "request", racing)
    with pytest.raises(OperationFailed, match=r"tmp-cleanup .* no longer as they were"):
        guard.apply(plan)
    guard.close()


def test_replication_is_reported_and_configured_only_when_named(
    tmp_path: Path, s3_server: str, s3_client: Any, s3_bucket: str, cli
) -> None:
    """moto's GetBucketReplication answers every rule with Filter {Prefix: ""} whatever was
    put, so replication is tested on the whole bucket here (no documents prefix)."""
    replicas = [f"{s3_bucket}-replica{i}" for i in range(3)]
    for replica in replicas:
        s3_client.create_bucket(Bucket=replica)
        enable_versioning(s3_client, replica)
    role = "arn:aws:iam::123456789012:role/spectron-replication"

    def config(destination: str, role: str, name: str) -> str:
        documents = {
            "url": f"s3://{s3_bucket}",
            "endpoint_url": s3_server,
            "replication": {"destination": destination, "role": role},
        }
        return str(write_config(tmp_path, documents, name=name))

    first = config(replicas[0], role, "first.yaml")
    check = cli("bucket", "check", "--config", first, "--json")
    assert check.returncode == 1
    findings = {f["name"]: f for f in json.loads(check.stdout)["findings"]}
    assert findings["replication"] == {
        "name": "replication",
        "ok": False,
        "required": True,
        "detail": f"not replicated to arn:aws:s3:::{replicas[0]}",
    }

    done = cli("bucket", "ensure", "--config", first, "--json")
    assert done.returncode == 0, done.stderr
    assert [c["setting"] for c in json.loads(done.stdout)["changes"]] == [
        "versioning",
        "lifecycle",
        "replication",
    ]
    replication = s3_client.get_bucket_replication(Bucket=s3_bucket)["ReplicationConfiguration"]
    assert replication["Role"] == role
    [rule] = replication["Rules"]
    assert rule["ID"] == GUARD_RULE_ID and rule["Status"] == "Enabled"
    assert rule["Destination"]["Bucket"] == f"arn:aws:s3:::{replicas[0]}"
    again = cli("bucket", "ensure", "--config", first, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["changes"] == []

    # The guard's own rule follows the configuration: another destination and role.
    second = config(replicas[1], role + "-2", "second.yaml")
    moved = cli("bucket", "ensure", "--config", second, "--json")
    assert moved.returncode == 0, moved.stderr
    assert [c["action"] for c in json.loads(moved.stdout)["changes"]] == [
        f"update replication rule {GUARD_RULE_ID}"
    ]
    replication = s3_client.get_bucket_replication(Bucket=s3_bucket)["ReplicationConfiguration"]
    assert replication["Role"] == role + "-2"
    assert [r["Destination"]["Bucket"] for r in replication["Rules"]] == [
        f"arn:aws:s3:::{replicas[1]}"
    ]

    # With a rule of somebody else's in the configuration, its role is not the guard's to
    # change: reported, nothing written, and the check still fails.
    foreign = {
        "ID": "theirs",
        "Priority": 5,
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": {"Bucket": f"arn:aws:s3:::{replicas[2]}"},
    }
    s3_client.put_bucket_replication(
        Bucket=s3_bucket,
        ReplicationConfiguration={**replication, "Rules": [*replication["Rules"], foreign]},
    )
    kept = s3_client.get_bucket_replication(Bucket=s3_bucket)["ReplicationConfiguration"]
    refused = cli("bucket", "ensure", "--config", first, "--json")
    assert refused.returncode == 1, refused.stderr
    assert any("another IAM role" in n for n in json.loads(refused.stdout)["notes"])
    assert s3_client.get_bucket_replication(Bucket=s3_bucket)["ReplicationConfiguration"] == kept

    # Half a replication setting is a configuration error.
    half = write_config(
        tmp_path,
        {"url": f"s3://{s3_bucket}", "endpoint_url": s3_server, "replication": {"role": role}},
        name="half.yaml",
    )
    result = cli("bucket", "check", "--config", str(half))
    assert result.returncode == 2
    assert "documents.replication: needs both destination and role" in result.stderr


# -- undelete and restore -------------------------------------------------------------------------


@pytest.fixture
def versioned(tmp_path: Path, s3_server: str, s3_bucket: str, s3_client: Any) -> Path:
    """A versioned bucket whose documents live under `spectron/`, and its configuration."""
    enable_versioning(s3_client, s3_bucket)
    return write_config(tmp_path, {"url": f"s3://{s3_bucket}/spectron", "endpoint_url": s3_server})


def test_a_deleted_document_comes_back_byte_for_byte(
    cli, versioned: Path, s3_client: Any, s3_bucket: str
) -> None:
    original = os.urandom(300_000)
    key = "spectron/documents/acme/report.pdf"
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=original)
    s3_client.delete_object(Bucket=s3_bucket, Key=key)
    s3_client.delete_object(Bucket=s3_bucket, Key=key)  # deleted twice: two markers
    with pytest.raises(s3_client.exceptions.NoSuchKey):
        s3_client.get_object(Bucket=s3_bucket, Key=key)

    dry = cli(
        "bucket", "undelete", "documents/acme/report.pdf", "--config", str(versioned), "--dry-run"
    )
    assert dry.returncode == 0, dry.stderr
    # Both markers are counted, also when S3 stamped them in the second of the version (it
    # then cannot tell which lies above it: "up to" that many more).
    said = re.search(
        r"would remove (\d+) delete marker\(s\) of \S+( \(and up to (\d+) more)?", dry.stderr
    )
    assert said, dry.stderr
    assert int(said[1]) + int(said[3] or 0) == 2, dry.stderr
    assert len(history(s3_client, s3_bucket, key)[1]) == 2  # nothing removed

    result = cli(
        "bucket", "undelete", "documents/acme/report.pdf", "--config", str(versioned), "--json"
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["changed"] is True and len(outcome["removed_delete_markers"]) == 2
    assert body(s3_client, s3_bucket, key) == original
    versions, markers = history(s3_client, s3_bucket, key)
    assert markers == [] and len(versions) == 1
    assert outcome["version"]["version_id"] == versions[0]["VersionId"]

    # Not deleted (any more): nothing to do, and nothing done.
    again = cli("bucket", "undelete", "documents/acme/report.pdf", "--config", str(versioned))
    assert again.returncode == 0 and "is not deleted" in again.stderr
    assert history(s3_client, s3_bucket, key)[0] == versions

    # (brackets in a key are text, not terminal markup)
    missing = cli("bucket", "undelete", "documents/[draft] 1.pdf", "--config", str(versioned))
    assert missing.returncode == 2
    assert "no such object" in missing.stderr and "nothing to undelete" in missing.stderr
    assert f"s3://{s3_bucket}/spectron/documents/[draft] 1.pdf" in missing.stderr


def test_restore_as_of_a_time_picks_the_version_current_then(
    cli, versioned: Path, s3_client: Any, s3_bucket: str
) -> None:
    """Three versions, one per second, then a delete. As-of times are taken between the
    versions' reported LastModified (S3 and moto stamp them to the second)."""
    key, rel = "spectron/notes/plan.md", "notes/plan.md"
    bodies = [b"first draft\n", b"second draft\n" * 50, b"final\n" + os.urandom(1000)]
    for data in bodies:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=data)
        next_second()
    s3_client.delete_object(Bucket=s3_bucket, Key=key)
    versions, [marker] = history(s3_client, s3_bucket, key)
    stamps = [v["LastModified"] for v in reversed(versions)]  # oldest first
    deleted_at = marker["LastModified"]

    def restore(when: str, *extra: str):
        return cli("bucket", "restore", rel, "--as-of", when, "--config", str(versioned), *extra)

    early = restore((stamps[0] - timedelta(seconds=5)).isoformat())
    assert early.returncode == 2 and "did not exist yet" in early.stderr
    gone = restore((deleted_at + timedelta(seconds=5)).isoformat())
    assert gone.returncode == 2 and "was deleted" in gone.stderr and "undelete" in gone.stderr

    dry = restore(between(stamps[1], stamps[2]), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["changed"] is False
    assert history(s3_client, s3_bucket, key) == (versions, [marker])  # nothing written

    first = restore(between(stamps[0], stamps[1]), "--json")
    assert first.returncode == 0, first.stderr
    outcome = json.loads(first.stdout)
    assert outcome["changed"] is True
    assert outcome["version"]["version_id"] == versions[-1]["VersionId"]  # the oldest
    assert body(s3_client, s3_bucket, key) == bodies[0]

    second = restore(between(stamps[1], stamps[2]), "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["version"]["version_id"] == versions[1]["VersionId"]
    assert body(s3_client, s3_bucket, key) == bodies[1]
    # Nothing is lost: the three drafts, the delete marker and the two copies are all there.
    now_versions, now_markers = history(s3_client, s3_bucket, key)
    assert len(now_versions) == 5 and now_markers == [marker | {"IsLatest": False}]

    # As of now, the current version is the one just copied: nothing to do.
    current = cli(
        "bucket", "restore", rel, "--as-of", "2999-01-01T00:00:00Z", "--config", str(versioned)
    )
    assert current.returncode == 0 and "already the current one" in current.stderr

    bad = cli("bucket", "restore", rel, "--as-of", "yesterday", "--config", str(versioned))
    assert bad.returncode == 2 and "--as-of" in bad.stderr


def test_a_version_and_a_delete_marker_of_the_same_second_are_not_guessed(
    versioned: Path, s3_client: Any, s3_bucket: str, s3_server: str
) -> None:
    guard = open_document_bucket(
        DocumentsConfig(url=f"s3://{s3_bucket}/spectron", endpoint_url=s3_server)
    )
    for attempt in range(5):  # a put and a delete in the same second: retry at a second's edge
        key = f"spectron/tie-{attempt}"
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"tied")
        s3_client.delete_object(Bucket=s3_bucket, Key=key)
        [version], [marker] = history(s3_client, s3_bucket, key)
        if version["LastModified"] == marker["LastModified"]:
            break
    else:
        pytest.fail("no put and delete within one second in 5 attempts")
    next_second()
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"later")
    as_of = version["LastModified"] + timedelta(milliseconds=500)
    with pytest.raises(UsageError, match="both stamped") as refused:
        guard.restore(key.removeprefix("spectron/"), as_of=as_of)
    assert "--version-id" in str(refused.value)
    outcome = guard.restore(key.removeprefix("spectron/"), version_id=version["VersionId"])
    assert outcome.changed and body(s3_client, s3_bucket, key) == b"tied"
    guard.close()


def test_undelete_and_restore_refuse_without_versioning(
    cli, docs: Path, s3_client: Any, s3_bucket: str
) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="a.txt", Body=b"x")
    for args in (("undelete", "a.txt"), ("restore", "a.txt", "--as-of", "2026-01-01T00:00:00Z")):
        result = cli("bucket", *args, "--config", str(docs))
        assert result.returncode == 2, result.stderr
        assert f"versioning is not enabled on bucket {s3_bucket}" in result.stderr
        assert "bucket ensure" in result.stderr
    assert body(s3_client, s3_bucket, "a.txt") == b"x"


# -- wrong bucket, permissions, file store ------------------------------------------------------


def test_a_wrong_bucket_is_named_with_what_to_do(
    cli, tmp_path: Path, s3_server: str, s3_bucket: str
) -> None:
    config = write_config(tmp_path, {"url": "s3://no-such-documents", "endpoint_url": s3_server})
    for args in (("check",), ("ensure",), ("undelete", "k"), ("restore", "k", "--version-id", "v")):
        result = cli("bucket", *args, "--config", str(config))
        assert result.returncode == 2, (args, result.stderr)
        assert "bucket no-such-documents does not exist" in result.stderr
        assert "correct the documents URL" in result.stderr


def test_the_file_store_says_s3_is_needed(cli, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"url": f"file://{tmp_path / 'documents'}"})
    for args in (("check",), ("ensure", "--dry-run"), ("undelete", "k"), ("restore", "k")):
        result = cli("bucket", *args, "--config", str(config))
        assert result.returncode == 2, (args, result.stderr)
        assert "need an S3 document store" in result.stderr and "file://" in result.stderr
    bare = tmp_path / "bare.yaml"
    bare.write_text(f"source: {{url: 'mem://'}}\ntarget: {{url: 'file://{tmp_path}/t'}}\n")
    result = cli("bucket", "check", "--config", str(bare))
    assert result.returncode == 2 and "set documents.url" in result.stderr


@dataclass
class IamS3:
    endpoint: str
    bucket: str
    readonly: dict[str, str]  # environment with the credentials of a user that may only read
    nobody: dict[str, str]  # ... of a user without any permission
    admin: Any  # a boto3 S3 client allowed everything


def _policy(*actions: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
        }
    )


@pytest.fixture(scope="module")
def iam_s3() -> Iterator[IamS3]:
    """A moto server of its own that checks IAM policies after its first three requests,
    which create the admin user (moto enforces the identity policies of its IAM users)."""
    with moto_s3_server({"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as endpoint:
        plain = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        iam = boto3.client("iam", **plain, aws_access_key_id="x", aws_secret_access_key="x")
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=_policy("*"))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin_keys = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        iam = boto3.client("iam", **plain, **admin_keys)
        users = {}
        for user, policy in (("reader", _policy("s3:Get*", "s3:List*")), ("nobody", None)):
            iam.create_user(UserName=user)
            if policy:
                iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=policy)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            users[user] = {
                **S3_TEST_ENV,
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            }
        admin = boto3.client("s3", **plain, **admin_keys)
        admin.create_bucket(Bucket="guarded-documents")
        yield IamS3(endpoint, "guarded-documents", users["reader"], users["nobody"], admin)
        admin.close()


def test_missing_permissions_name_the_bucket_and_the_permission(
    cli, tmp_path: Path, iam_s3: IamS3
) -> None:
    config = write_config(
        tmp_path, {"url": f"s3://{iam_s3.bucket}", "endpoint_url": iam_s3.endpoint}
    )
    denied = cli("bucket", "check", "--config", str(config), env=iam_s3.nobody)
    assert denied.returncode == 2, denied.stderr
    assert f"access to bucket {iam_s3.bucket}" in denied.stderr
    assert "s3:GetBucketVersioning" in denied.stderr and "check the credentials" in denied.stderr

    readable = cli("bucket", "check", "--config", str(config), env=iam_s3.readonly)
    assert readable.returncode == 1, readable.stderr  # the reader may check: all missing

    refused = cli("bucket", "ensure", "--config", str(config), env=iam_s3.readonly)
    assert refused.returncode == 2, refused.stderr
    assert f"access to bucket {iam_s3.bucket}" in refused.stderr
    assert "s3:PutBucketVersioning" in refused.stderr
    for secret in (
        iam_s3.nobody["AWS_SECRET_ACCESS_KEY"],
        iam_s3.readonly["AWS_SECRET_ACCESS_KEY"],
    ):
        assert secret not in denied.stderr + refused.stderr
    assert iam_s3.admin.get_bucket_versioning(Bucket=iam_s3.bucket).get("Status") is None


# -- the flow ---------------------------------------------------------------------------------------


def run_flow(**params: Any):
    state = bucket_guard(return_state=True, **params)
    return state, state.state_details.flow_run_id


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_checks_fails_and_alerts_on_a_bare_bucket(
    tmp_path: Path,
    s3_server: str,
    s3_bucket: str,
    s3_client: Any,
    webhook: Webhook,
    capfd: pytest.CaptureFixture[str],
) -> None:
    config = write_config(
        tmp_path, {"url": f"s3://{s3_bucket}", "endpoint_url": s3_server}, webhook=webhook
    )
    state, run_id = run_flow(config_path=str(config))
    assert state.is_failed(), state
    failure = state.result(raise_on_failure=False)
    assert isinstance(failure, GuardFailed) and failure.bucket == s3_bucket
    assert [f.split(":")[0] for f in failure.failures] == [
        "versioning",
        "noncurrent_expiration",
        "abort_multipart",
    ]
    assert versioning(s3_client, s3_bucket) is None  # check only: nothing changed

    artifacts = artifacts_of(run_id)
    summary = artifacts["spectron-bucket-guard"]
    assert "MISSING" in summary and f"s3://{s3_bucket}" in summary and "check only" in summary
    rows = artifacts["spectron-bucket-guard-checks"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert {r["check"]: r["ok"] for r in rows} == {
        "versioning": False,
        "noncurrent_expiration": False,
        "abort_multipart": False,
        "replication": False,
    }
    payload = wait_for_event("spectron.bucket.failed", run_id)
    assert payload["bucket"] == s3_bucket and payload["ok"] is False
    assert any(r.startswith("versioning") for r in payload["reasons"])

    [message] = webhook.received
    text = message["json"]["text"]
    assert "bucket guard FAILED" in text and s3_bucket in text and str(run_id) in text
    assert "versioning" in text
    logs = logs_of(run_id)
    assert "alert posted" in logs
    captured = capfd.readouterr()
    for text in (captured.out, captured.err, logs, json.dumps(artifacts, default=str)):
        assert HOOK_SECRET not in text


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_ensures_when_configured_to(
    tmp_path: Path, s3_server: str, s3_bucket: str, s3_client: Any, webhook: Webhook
) -> None:
    config = write_config(
        tmp_path,
        {"url": f"s3://{s3_bucket}", "endpoint_url": s3_server, "guard": {"ensure": True}},
        webhook=webhook,
    )
    # A dry run reports the changes, makes none, and the bucket is still unguarded.
    state, run_id = run_flow(config_path=str(config), dry_run=True)
    assert state.is_failed()
    assert versioning(s3_client, s3_bucket) is None and lifecycle(s3_client, s3_bucket) == []
    assert "dry run" in artifacts_of(run_id)["spectron-bucket-guard"]

    state, run_id = run_flow(config_path=str(config))
    assert state.is_completed(), state.message
    report = state.result()
    assert report["ok"] and report["ensure"] is True
    assert [c["setting"] for c in report["changes"]] == ["versioning", "lifecycle"]
    assert versioning(s3_client, s3_bucket) == "Enabled"
    assert [r["ID"] for r in lifecycle(s3_client, s3_bucket)] == [GUARD_RULE_ID]
    summary = artifacts_of(run_id)["spectron-bucket-guard"]
    assert "guard OK" in summary and "add rule" in summary
    payload = wait_for_event("spectron.bucket.checked", run_id)
    assert payload["ok"] is True and len(payload["changes"]) == 2

    # ensure=False overrides the configuration: a check only, which now passes.
    state, _ = run_flow(config_path=str(config), ensure=False)
    assert state.is_completed() and state.result()["changes"] == []
    assert len(webhook.received) == 1  # only the dry run alerted


def test_the_guard_settings_come_from_the_documents_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spectron_backup.config import load_config

    config = write_config(tmp_path, {"url": "s3://spectron-documents", "noncurrent_days": 30})
    documents = load_config(config).documents
    assert documents is not None
    assert (documents.noncurrent_days, documents.abort_multipart_days) == (30, 7)
    assert documents.guard.ensure is False and documents.replication.destination is None
    monkeypatch.setenv("SPECTRON_BACKUP__DOCUMENTS__GUARD__ENSURE", "true")
    assert load_config(config).documents.guard.ensure is True
    bad = write_config(
        tmp_path,
        {"url": "s3://d", "replication": {"destination": "r", "role": "spectron"}},
        name="bad.yaml",
    )
    with pytest.raises(UsageError, match=r"documents\.replication: role 'spectron' is not an IAM"):
        load_config(bad)
    with pytest.raises(UsageError, match=r"documents\.noncurrent_days"):
        load_config(config, overrides={"documents.noncurrent_days": 0})
