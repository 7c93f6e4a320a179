"""`spectron-backup expire` as an operator runs it, on a seeded Spectron instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import open_store
from spectron_backup.surreal import connect

NOW = "2026-11-24T12:00:00Z"
TABLES = ("entity", "attribute", "relates_to", "instruction", "uncertainty")


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
        f"sweep: {{max_delete_fraction: {fraction}}}\n{retention}"
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
        retention="retention:\n  - {scope: {org: acme}, memory_category: knowledge, ttl: 90d}\n",
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
