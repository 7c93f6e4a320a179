"""Memory retention policies (design section 7): parsing, precedence, config loading, the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from spectron_backup.config import load_config
from spectron_backup.errors import UsageError
from spectron_backup.policies import CATEGORIES, DEFAULT_TTLS, parse_policies
from tests.conftest import run_cli


def rule(ttl="7d", category="context", scope=None, **extra):
    raw = {"memory_category": category, "ttl": ttl, **extra}
    if scope is not None:
        raw["scope"] = scope
    return raw


# --- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days"), [("7d", 7), ("2w", 14), ("1y", 365), ("30d", 30), ("1d", 1), (" 90d ", 90)]
)
def test_good_ttls(text: str, days: int) -> None:
    (policy,) = parse_policies([rule(text)]).policies
    assert policy.ttl == timedelta(days=days)


@pytest.mark.parametrize(
    ("ttl", "says"),
    [
        ("12h", "hours are not allowed"),
        ("90m", "minutes are not allowed"),
        ("0d", "below the minimum of 1d"),
        ("1001y", "above the maximum of 1000y"),
        ("999999999y", "above the maximum of 1000y"),
        ("52200w", "above the maximum of 1000y"),
        ("abc", "is not a duration"),
        ("30", "is not a duration"),
        (30, "has no unit"),
        ("3x", "unknown unit"),
        (None, "is not a duration"),
    ],
)
def test_bad_ttls_name_the_rule_and_what_is_allowed(ttl: object, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_policies([rule(), rule(ttl)])
    message = str(caught.value)
    assert message.startswith("retention rule 2: ttl")
    assert says in message
    assert "<n>d, <n>w or <n>y" in message or "minimum" in message or "maximum" in message
    assert caught.value.exit_code == 2


def test_missing_ttl_and_category_are_errors() -> None:
    with pytest.raises(UsageError) as caught:
        parse_policies([{"scope": {"org": "acme"}}])
    assert "retention rule 1: memory_category is required" in str(caught.value)
    assert "retention rule 1: ttl is required" in str(caught.value)


def test_unknown_category() -> None:
    with pytest.raises(UsageError, match=r"retention rule 1: memory_category 'facts' is unknown"):
        parse_policies([rule(category="facts")])


def test_every_category_is_accepted() -> None:
    policies = parse_policies([rule(category=c) for c in CATEGORIES])
    assert [p.memory_category for p in policies.policies] == list(CATEGORIES)


def test_unknown_key() -> None:
    with pytest.raises(UsageError) as caught:
        parse_policies([rule(), rule(scope={"org": "acme"}, tll="7d")])
    assert "retention rule 2: unknown key 'tll' (allowed: scope, memory_category, ttl)" in str(
        caught.value
    )


def test_several_problems_in_one_error() -> None:
    with pytest.raises(UsageError) as caught:
        parse_policies(
            [
                rule(ttl="12h"),
                rule(),
                rule(category="facts", ttl="0d", extra=1),
                "not a rule",
            ]
        )
    message = str(caught.value)
    assert message.count("retention rule 1:") == 1
    assert "retention rule 2" not in message
    assert message.count("retention rule 3:") == 3
    assert "retention rule 4: must be a map" in message


def test_list_form_scopes_equal_map_form() -> None:
    as_list = parse_policies([rule(scope=["org/acme", "agent/support-bot"])]).policies[0]
    as_map = parse_policies([rule(scope={"agent": "support-bot", "org": "acme"})]).policies[0]
    assert as_list.scope == as_map.scope == (("agent", "support-bot"), ("org", "acme"))
    # the first segment is the dimension, the rest the (hierarchical) value
    deep = parse_policies([rule(scope=["org/acme/emea"])]).policies[0]
    assert deep.scope == (("org", "acme/emea"),)
    assert deep.describe() == "rule 1 (org=acme/emea; context; 7d)"


@pytest.mark.parametrize(
    ("scope", "says"),
    [
        (["acme"], "must be 'dimension/value'"),
        (["org/"], "non-empty segments"),
        (["/acme"], "non-empty name"),
        ({"org": "acme//emea"}, "non-empty segments"),
        (["org/acme", "org/beta"], "appears more than once"),
        ({"org": ["acme"]}, "must be a string"),
        ("org/acme", "scope must be a map"),
    ],
)
def test_bad_scopes(scope: object, says: str) -> None:
    with pytest.raises(UsageError, match=r"retention rule 1: ") as caught:
        parse_policies([rule(scope=scope)])
    assert says in str(caught.value)


def test_describe() -> None:
    policies = parse_policies(
        [rule("30d", scope={}), rule("14d", "unknowns", {"org": "acme", "agent": "support-bot"})]
    )
    assert policies.policies[0].describe() == "rule 1 (any scope; context; 30d)"
    assert policies.policies[1].describe() == "rule 2 (agent=support-bot, org=acme; unknowns; 14d)"


# --- resolution --------------------------------------------------------------------------

ACME_BOT = ["org/acme", "agent/support-bot", "user/alice"]


def test_more_dimensions_win_whatever_the_order() -> None:
    for raw in (
        [
            rule("30d", scope={"org": "acme"}),
            rule("3d", scope={"org": "acme", "agent": "support-bot"}),
        ],
        [
            rule("3d", scope={"org": "acme", "agent": "support-bot"}),
            rule("30d", scope={"org": "acme"}),
        ],
    ):
        policies = parse_policies(raw)
        got = policies.resolve([ACME_BOT], "context")
        assert got.ttl == timedelta(days=3)
        assert got.policy is not None and got.policy.dimensions == 2
        # a record of the org with another agent gets the org rule
        other = policies.resolve([["org/acme", "agent/sales"]], "context")
        assert other.ttl == timedelta(days=30)


def test_tie_goes_to_the_first_listed_and_warns() -> None:
    policies = parse_policies(
        [rule("30d", scope={"org": "acme"}), rule("14d", scope={"agent": "support-bot"})]
    )
    got = policies.resolve([ACME_BOT], "context")
    assert got.policy is not None and got.policy.position == 1
    assert "from rule 1" in got.describe()
    (warning,) = policies.warnings()
    assert warning.startswith("tie: rule 1") and "rule 2" in warning
    # only one of them matches: no tie on that record
    assert policies.resolve([["agent/support-bot"]], "context").ttl == timedelta(days=14)


def test_no_tie_warning_for_incompatible_or_different_categories() -> None:
    policies = parse_policies(
        [
            rule("30d", scope={"org": "acme"}),
            rule("14d", scope={"org": "beta"}),  # no clause can hold both (same dimension)
            rule("3d", "unknowns", {"agent": "bot"}),  # another category
            rule("5d", scope={"org": "acme", "agent": "bot"}),  # more dimensions
        ]
    )
    assert policies.warnings() == []


def test_shadowed_and_duplicate_rules_warn() -> None:
    policies = parse_policies(
        [
            rule("30d", scope={"org": "acme"}),
            rule("1y", scope={"org": "acme/emea"}),  # always loses to rule 1
            rule("30d", scope=["org/acme"]),  # duplicate
            rule("2d", scope={"org": "acme/emea", "agent": "x"}),  # more specific: fine
        ]
    )
    warnings = policies.warnings()
    assert len(warnings) == 2
    assert "rule 2" in warnings[0] and "can never apply" in warnings[0]
    assert "rule 3" in warnings[1] and "duplicates rule 1" in warnings[1]
    shadowed = {row["rule"]: row["shadowed_by"] for row in policies.table() if row["rule"]}
    assert shadowed == {1: None, 2: 1, 3: 1, 4: None}


def test_descendants_match_but_prefix_strings_do_not() -> None:
    policies = parse_policies([rule("30d", scope={"org": "acme"})])
    assert policies.resolve([["org/acme/emea", "user/bob"]], "context").ttl == timedelta(days=30)
    assert policies.resolve([["org/acme"]], "context").ttl == timedelta(days=30)
    # org/acmecorp is not below org/acme; user/acme is another dimension
    assert policies.resolve([["org/acmecorp"]], "context").policy is None
    assert policies.resolve([["user/acme"]], "context").policy is None
    # a deeper rule does not match the parent
    deep = parse_policies([rule("30d", scope=["org/acme/emea"])])
    assert deep.resolve([["org/acme"]], "context").policy is None


def test_dimensions_must_sit_in_one_clause_and_clauses_are_ored() -> None:
    policies = parse_policies([rule("3d", scope={"org": "acme", "agent": "support-bot"})])
    # split over two clauses: no single clause holds both
    split = policies.resolve([["org/acme"], ["agent/support-bot"]], "context")
    assert split.policy is None
    # an unrelated clause next to a matching one: the OR matches
    either = policies.resolve([["org/beta", "agent/x"], ACME_BOT], "context")
    assert either.ttl == timedelta(days=3)
    # only an unrelated clause: no match
    assert policies.resolve([["org/beta", "agent/support-bot"]], "context").policy is None


def test_empty_scope_matches_everything_but_loses_to_scoped_rules() -> None:
    policies = parse_policies([rule("2d", scope={}), rule("30d", scope={"org": "acme"})])
    assert policies.resolve([], "context").ttl == timedelta(days=2)
    assert policies.resolve([["user/x"]], "context").ttl == timedelta(days=2)
    assert policies.resolve([ACME_BOT], "context").ttl == timedelta(days=30)


def test_defaults_per_category() -> None:
    policies = parse_policies([rule("30d", scope={"org": "acme"})])
    for category in CATEGORIES:
        got = policies.resolve([["org/other"]], category)
        assert got.policy is None and got.ttl == DEFAULT_TTLS[category]
    assert DEFAULT_TTLS["context"] == timedelta(days=7)
    assert DEFAULT_TTLS["unknowns"] == timedelta(days=30)
    for indefinite in ("identity", "knowledge", "instructions"):
        assert DEFAULT_TTLS[indefinite] is None
        assert policies.resolve([ACME_BOT], indefinite).describe() == "indefinite (default)"
    # the rule is for context only
    assert policies.resolve([ACME_BOT], "unknowns").ttl == timedelta(days=30)
    with pytest.raises(ValueError, match="unknown memory category"):
        policies.resolve([ACME_BOT], "facts")


def test_table_lists_defaults_and_rules() -> None:
    rows = parse_policies([rule("14d", "unknowns", ["org/acme"])]).table()
    defaults = {r["memory_category"]: r["ttl"] for r in rows if r["rule"] is None}
    assert defaults == {
        "identity": "indefinite",
        "knowledge": "indefinite",
        "context": "7d",
        "instructions": "indefinite",
        "unknowns": "30d",
    }
    (ruled,) = [r for r in rows if r["rule"] == 1]
    assert ruled["scope"] == {"org": "acme"} and ruled["ttl_seconds"] == 14 * 86400


# --- configuration and CLI ---------------------------------------------------------------

CONFIG = """\
source: {url: 'mem://'}
target: {url: 'file:///tmp/spectron-backup-policies-test'}
retention:
"""

GOOD_RULES = """\
  - scope: {org: acme}
    memory_category: context
    ttl: 30d
  - scope: {org: acme, agent: support-bot}
    memory_category: unknowns
    ttl: 14d
  - scope: ["agent/support-bot"]
    memory_category: context
    ttl: 2w
"""


def test_config_loads_policies(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + GOOD_RULES)
    policies = load_config(path).policies()
    assert [p.position for p in policies.policies] == [1, 2, 3]
    assert policies.resolve([ACME_BOT], "unknowns").ttl == timedelta(days=14)


def test_config_with_a_bad_rule_fails_at_load(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + GOOD_RULES + "  - {memory_category: context, ttl: 12h}\n")
    with pytest.raises(UsageError) as caught:
        load_config(path)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert message.startswith(f"configuration ({path}): retention: rule 4: ttl '12h'")
    assert "hours are not allowed" in message


def test_cli_retention_check_json(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + GOOD_RULES)
    result = run_cli("retention", "check", "--config", str(path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    rules = [row["rule"] for row in document["policies"] if row["rule"] is not None]
    assert sorted(rules) == [1, 2, 3]
    defaults = [row for row in document["policies"] if row["rule"] is None]
    assert {row["memory_category"] for row in defaults} == set(CATEGORIES)
    (warning,) = document["warnings"]
    assert warning.startswith("tie: rule 1") and "rule 3" in warning


def test_cli_retention_check_table_and_bad_rule(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + GOOD_RULES)
    result = run_cli("retention", "check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "default" in result.stderr and "tie: rule 1" in result.stderr
    path.write_text(CONFIG + "  - {memory_category: facts, ttl: 0d}\n")
    bad = run_cli("retention", "check", "--config", str(path))
    assert bad.returncode == 2
    assert "rule 1: memory_category 'facts' is unknown" in bad.stderr
    assert "rule 1: ttl '0d' is below the minimum of 1d" in bad.stderr


def test_cli_on_mem_source_does_not_check_indexes(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + GOOD_RULES)
    result = run_cli("retention", "check", "--config", str(path), "--json")
    document = json.loads(result.stdout)
    assert document["indexes"] == {}
    assert "mem://" in document["index_note"]
