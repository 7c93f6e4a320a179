"""`spectron-backup expire` as an operator runs it, on a seeded Spectron instance."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from spectron_backup.durations import parse_timestamp
from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import open_store
from spectron_backup.surreal import connect

NOW = "2026-11-24T12:00:00Z"
TABLES = ("entity", "attribute", "relates_to", "instruction", "uncertainty")
RULE = "retention:\n  - {scope: {org: acme}, memory_category: knowledge, ttl: 90d}\n"


@pytest.fixture
def instance(tmp_path: Path) -> str:
    url = f"surrealkv://{tmp_path / 'spectron'}"
    with connect(url) as conn:
        seed_instance(conn, SeedPlan(contexts=1, scale=0.3, seed=2, embedding_width=8))
    return url


def write_config(tmp_path: Path, source: str, fraction: float = 1.0, retention: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"source: {{url: '{source}'}}\ntarget: {{url: 'file://{tmp_path / 'target'}'}}\n"
        f"sweep: {{max_delete_fraction: {fraction}, guard_allowance: 0}}\n{retention}"
    )
    return path


def counts(url: str) -> dict[str, int]:
    with connect(url) as conn:
        conn.use("ctx_acme_prod", "acme_prod")
        return {
            t: (conn.run_one(f"SELECT count() FROM {t} GROUP ALL") or [{"count": 0}])[0]["count"]
            for t in TABLES
        }


def test_dry_run_then_sweep_then_nothing_left_to_sweep(
    instance: str, tmp_path: Path, cli_with_prefect
) -> None:
    config = write_config(
        tmp_path,
        instance,
        retention=RULE,
    )
    before = counts(instance)
    dry = cli_with_prefect("expire", "--config", str(config), "--dry-run", "--now", NOW, "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] and planned["deleted_total"] > 0
    assert counts(instance) == before  # nothing changed
    reasons = {item["reason"] for d in planned["databases"] for item in d["deleted"]}
    assert reasons == {"valid_until", "ttl"}
    assert any(item["policy"] == "rule 1" for d in planned["databases"] for item in d["deleted"])
    assert open_store(f"file://{tmp_path / 'target'}").exists(planned["stored_as"])

    real = cli_with_prefect("expire", "--config", str(config), "--now", NOW, "--json")
    assert real.returncode == 0, real.stderr
    done = json.loads(real.stdout)
    assert done["deleted_total"] == planned["deleted_total"]
    after = counts(instance)
    assert sum(before.values()) - sum(after.values()) == done["deleted_total"]

    again = cli_with_prefect("expire", "--config", str(config), "--now", NOW, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["deleted_total"] == 0
    assert counts(instance) == after


def expected_deletions(url: str, now: datetime) -> tuple[set[str], set[str]]:
    """(ids to delete, entities held), worked out here from the records themselves under the
    one rule of `RULE` and the defaults of design section 7, not by the sweep's code."""
    defaults = {"context": timedelta(days=7), "unknowns": timedelta(days=30)}
    fixed = {"instruction": "instructions", "uncertainty": "unknowns"}

    def ttl(category: str, clauses: list[list[str]]) -> timedelta | None:
        # RULE: {org: acme} knowledge 90d; "org/acme" or a path below it, in any one clause
        if category == "knowledge" and any(
            p == "org/acme" or p.startswith("org/acme/") for c in clauses for p in c
        ):
            return timedelta(days=90)
        return defaults.get(category)

    rows: dict[str, list[dict]] = {}
    with connect(url) as conn:
        conn.use("ctx_acme_prod", "acme_prod")
        for table in TABLES:
            rows[table] = conn.run_one(
                "SELECT <string> id AS id, created_at, valid_until, memory_category AS category, "
                "scope.paths AS clauses, <string> entity AS entity, <string> in AS from, "
                f"<string> out AS to FROM {table}"
            )

    def expired(table: str, row: dict) -> bool:
        until = row.get("valid_until")
        if isinstance(until, datetime):
            if until < now:
                return True
            if until > now:
                return False  # still valid: never touched
        life = ttl(fixed.get(table, row.get("category") or ""), row.get("clauses") or [])
        return life is not None and row["created_at"] + life < now

    doomed = {r["id"] for t in TABLES if t != "entity" for r in rows[t] if expired(t, r)}
    referred = {r["entity"] for r in rows["attribute"] if r["id"] not in doomed}
    for edge in rows["relates_to"]:
        if edge["id"] not in doomed:
            referred |= {edge["from"], edge["to"]}
    held = {r["id"] for r in rows["entity"] if expired("entity", r) and r["id"] in referred}
    doomed |= {r["id"] for r in rows["entity"] if expired("entity", r)} - held
    return doomed, held


def all_ids(url: str) -> set[str]:
    with connect(url) as conn:
        conn.use("ctx_acme_prod", "acme_prod")
        return {i for t in TABLES for i in conn.run_one(f"SELECT VALUE <string> id FROM {t}")}


def test_deletes_exactly_the_expected_records_of_a_seeded_context(
    instance: str, tmp_path: Path, cli_with_prefect
) -> None:
    config = write_config(tmp_path, instance, retention=RULE)
    expected, held = expected_deletions(instance, parse_timestamp(NOW))
    assert expected and held, "the seeded Context should exercise deletion and holding"
    per_table = Counter(i.split(":", 1)[0] for i in expected)

    dry = cli_with_prefect("expire", "--config", str(config), "--dry-run", "--now", NOW, "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    planned_per_table: Counter[str] = Counter()
    for item in planned["databases"][0]["deleted"]:
        planned_per_table[item["table"]] += item["count"]
    assert planned_per_table == per_table
    assert planned["held_total"] == len(held)

    before = all_ids(instance)
    real = cli_with_prefect("expire", "--config", str(config), "--now", NOW, "--json")
    assert real.returncode == 0, real.stderr
    assert before - all_ids(instance) == expected  # exactly these, nothing else
    assert json.loads(real.stdout)["deleted_total"] == len(expected)


def test_the_guard_refuses_then_force_proceeds(
    instance: str, tmp_path: Path, cli_with_prefect
) -> None:
    config = write_config(tmp_path, instance, fraction=0.01)
    before = counts(instance)
    refused = cli_with_prefect("expire", "--config", str(config), "--now", NOW)
    assert refused.returncode == 1
    assert "refused" in refused.stderr and "--force" in refused.stderr
    forced = cli_with_prefect("expire", "--config", str(config), "--now", NOW, "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["deleted_total"] > 0
    assert sum(counts(instance).values()) < sum(before.values())


def test_a_bad_rule_is_a_configuration_error(
    instance: str, tmp_path: Path, cli_with_prefect
) -> None:
    config = write_config(
        tmp_path,
        instance,
        retention="retention:\n  - {scope: {org: acme}, memory_category: context, ttl: 12h}\n",
    )
    result = cli_with_prefect("expire", "--config", str(config), "--dry-run")
    assert result.returncode == 2
    assert "rule 1" in result.stderr and "hours are not allowed" in result.stderr


def test_a_dry_run_reports_what_the_guard_would_refuse_and_every_report_is_kept(
    instance: str, tmp_path: Path, cli_with_prefect
) -> None:
    config = write_config(tmp_path, instance, fraction=0.01)
    runs = [
        cli_with_prefect("expire", "--config", str(config), "--dry-run", "--now", NOW, "--json")
        for _ in range(2)
    ]
    for dry in runs:  # the check the README advises before --force shows the numbers
        assert dry.returncode == 0, dry.stderr
        planned = json.loads(dry.stdout)
        assert {r.split(": ")[1] for r in planned["refused"]} == {
            "attribute",
            "relates_to",
            "uncertainty",
        }
    human = cli_with_prefect("expire", "--config", str(config), "--dry-run", "--now", NOW)
    assert human.returncode == 0 and "the guard would refuse" in human.stderr
    # the same --now three times: three reports, none replaced; its time is in UTC
    stored = [json.loads(dry.stdout)["stored_as"] for dry in runs]
    assert len(set(stored)) == 2
    offset = cli_with_prefect(
        "expire",
        "--config",
        str(config),
        "--dry-run",
        "--now",
        "2026-11-24T14:00:00+02:00",
        "--json",
    )
    assert json.loads(offset.stdout)["now"] == "2026-11-24T12:00:00.000000Z"
    target = open_store(f"file://{tmp_path / 'target'}")
    assert len([i for i in target.list("sweeps/") if i.key.endswith("-dry-run.json")]) == 4


def test_one_context_failing_neither_stops_the_others_nor_loses_the_report(
    tmp_path: Path, cli_with_prefect
) -> None:
    url = f"surrealkv://{tmp_path / 'spectron'}"
    with connect(url) as conn:
        seeded = seed_instance(conn, SeedPlan(contexts=2, scale=0.3, seed=2, embedding_width=8))
        broken, healthy = seeded.contexts
        conn.use(broken.namespace, broken.database)
        conn.run(  # a real refusal by the engine, inside that Context's delete transaction
            "DEFINE EVENT keep_attributes ON attribute WHEN $event = 'DELETE' "
            "THEN { THROW 'attributes are kept here' }"
        )
    config = write_config(tmp_path, url, retention=RULE)
    before = counts_of(url, healthy.namespace, healthy.database)
    result = cli_with_prefect("expire", "--config", str(config), "--now", NOW)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and broken.context_id in errors[0], result.stderr
    assert "attributes are kept here" in errors[0]
    after = counts_of(url, healthy.namespace, healthy.database)
    assert sum(after.values()) < sum(before.values())  # the other Context was swept
    target = open_store(f"file://{tmp_path / 'target'}")
    (report_key,) = [i.key for i in target.list("sweeps/")]
    report = json.loads(target.get_bytes(report_key))
    assert [d["context"] for d in report["databases"]] == [healthy.context_id]
    assert report["deleted_total"] == sum(before.values()) - sum(after.values())
    assert len(report["failed"]) == 1 and broken.context_id in report["failed"][0]


def counts_of(url: str, ns: str, db: str) -> dict[str, int]:
    with connect(url) as conn:
        conn.use(ns, db)
        return {
            t: (conn.run_one(f"SELECT count() FROM {t} GROUP ALL") or [{"count": 0}])[0]["count"]
            for t in TABLES
        }
