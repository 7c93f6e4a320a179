"""Spectron's per-scope memory retention policies (design section 7), as pure data and functions.

The configuration's `retention:` list::

    retention:
      - scope: {org: acme}                  # or a list of scope paths: ["org/acme"]
        memory_category: context
        ttl: 30d
      - scope: {org: acme, agent: support-bot}
        memory_category: unknowns
        ttl: 14d

Syntax decisions:

* `scope` is a map `dimension: value`, or a list of scope paths `dimension/value`. In a path
  the first segment is the dimension and the rest is the value, which may itself be
  hierarchical: `org/acme/emea` is dimension `org`, value `acme/emea` (the same as
  `{org: acme/emea}`). Segments must be non-empty; a dimension may appear once per rule. A
  missing or empty scope matches every record.
* `memory_category` is one of `CATEGORIES`.
* `ttl` is `<n>d`, `<n>w` or `<n>y` (a year is 365 days), at least `1d`.
* Any other key in a rule is an error. All problems are collected into one `UsageError`
  whose parts each name the rule by its 1-based position: `retention rule 2: ...`.

Matching: a policy matches a record when ONE of the record's scope clauses (a list of paths
such as `["org/acme", "agent/support-bot", "user/alice"]`) holds, for EACH `(dimension, value)`
of the policy, the path `dimension/value` or a descendant `dimension/value/...`.
Precedence: the matching policy with the most dimensions wins; ties go to the rule listed
first; when nothing matches, the category's default (`DEFAULT_TTLS`) applies.

Warnings (`PolicySet.warnings`), for `spectron-backup retention check`:

* shadowed: a rule that can never apply because an earlier rule of the same category has the
  same dimensions with equal or ancestor values (it matches every record the later one
  matches and wins the tie); an exact duplicate is the special case of equal scopes.
* tie: two rules of the same category with the same number of dimensions whose scopes are
  compatible, i.e. one clause can satisfy both: for every dimension they share, the values
  are equal or one is a path-descendant of the other (dimensions they do not share can sit
  side by side in one clause). The first listed wins on such records.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from spectron_backup.durations import format_duration
from spectron_backup.errors import UsageError

CATEGORIES = ("identity", "knowledge", "context", "instructions", "unknowns")
#: None = indefinite (never expires by age)
DEFAULT_TTLS: dict[str, timedelta | None] = {
    "identity": None,
    "knowledge": None,
    "instructions": None,
    "context": timedelta(days=7),
    "unknowns": timedelta(days=30),
}
RULE_KEYS = ("scope", "memory_category", "ttl")

_TTL = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)\s*$")
_TTL_UNITS = {"d": 1, "w": 7, "y": 365}
#: The longest TTL a rule may give (a 9999y "never" overflowed the sweep's date arithmetic).
MAX_TTL_YEARS = 1000
_TTL_ALLOWED = f"use <n>d, <n>w or <n>y (for example 30d, 2w, 1y), from 1d to {MAX_TTL_YEARS}y"
_SUB_DAY = {"h": "hours", "m": "minutes", "s": "seconds", "ms": "milliseconds"}


def format_ttl(ttl: timedelta | None) -> str:
    """`indefinite`, `<n>y` for whole years, else `<n>d` (14d, not 2w), or finer for odd values."""
    if ttl is None:
        return "indefinite"
    if ttl.seconds or ttl.microseconds:
        return format_duration(ttl)
    return f"{ttl.days // 365}y" if ttl.days % 365 == 0 else f"{ttl.days}d"


def _is_under(path: str, prefix: str) -> bool:
    """`path` is `prefix` or a descendant of it (`prefix/...`)."""
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class Policy:
    position: int  # 1-based position in the retention: list
    scope: tuple[tuple[str, str], ...]  # (dimension, value) pairs, sorted
    memory_category: str
    ttl: timedelta | None
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_prefixes", tuple(f"{d}/{v}" for d, v in self.scope))

    @property
    def dimensions(self) -> int:
        return len(self.scope)

    def scope_text(self) -> str:
        return ", ".join(f"{d}={v}" for d, v in self.scope) or "any scope"

    def describe(self) -> str:
        return (
            f"rule {self.position} ({self.scope_text()}; {self.memory_category}; "
            f"{format_ttl(self.ttl)})"
        )

    def matches_clause(self, clause: Sequence[str]) -> bool:
        return all(any(_is_under(path, prefix) for path in clause) for prefix in self._prefixes)

    def matches(self, clauses: Sequence[Sequence[str]]) -> bool:
        if not self._prefixes:
            return True
        return any(self.matches_clause(clause) for clause in clauses)


@dataclass(frozen=True)
class Resolution:
    ttl: timedelta | None
    policy: Policy | None  # None = the category default applies

    def describe(self) -> str:
        if self.policy is None:
            return f"{format_ttl(self.ttl)} (default)"
        return f"{format_ttl(self.ttl)} from {self.policy.describe()}"


def _compatible(a: Policy, b: Policy) -> bool:
    """One scope clause can satisfy both policies."""
    bv = dict(b.scope)
    for dim, value in a.scope:
        other = bv.get(dim)
        if other is not None and not (_is_under(value, other) or _is_under(other, value)):
            return False
    return True


def _covers(earlier: Policy, later: Policy) -> bool:
    """`earlier` matches every record `later` matches and wins the tie (same dimensions)."""
    lv = dict(later.scope)
    if set(lv) != {d for d, _ in earlier.scope}:
        return False
    return all(_is_under(lv[d], v) for d, v in earlier.scope)


def _example_clause(a: Policy, b: Policy) -> list[str]:
    merged = dict(a.scope)
    for dim, value in b.scope:
        if dim not in merged or len(value) > len(merged[dim]):
            merged[dim] = value
    return [f"{d}/{v}" for d, v in sorted(merged.items())]


class PolicySet:
    """The parsed `retention:` list; `resolve` picks the TTL for a record."""

    def __init__(self, policies: Sequence[Policy] = ()) -> None:
        self.policies: tuple[Policy, ...] = tuple(policies)
        # per category, in precedence order: most dimensions first, then listed first
        self._ordered: dict[str, tuple[Policy, ...]] = {
            category: tuple(
                sorted(
                    (p for p in self.policies if p.memory_category == category),
                    key=lambda p: (-p.dimensions, p.position),
                )
            )
            for category in CATEGORIES
        }

    def __len__(self) -> int:
        return len(self.policies)

    def for_category(self, category: str) -> tuple[Policy, ...]:
        """The category's rules in precedence order."""
        return self._ordered[category]

    def resolve(self, clauses: Sequence[Sequence[str]], category: str) -> Resolution:
        """The TTL for a record of `category` whose scope is the OR of `clauses`.

        Raises ValueError for a category outside CATEGORIES."""
        if category not in self._ordered:
            raise ValueError(
                f"unknown memory category {category!r}: expected one of {', '.join(CATEGORIES)}"
            )
        for policy in self._ordered[category]:
            if policy.matches(clauses):
                return Resolution(ttl=policy.ttl, policy=policy)
        return Resolution(ttl=DEFAULT_TTLS[category], policy=None)

    def shadowed_by(self) -> dict[int, Policy]:
        """position of a rule that can never apply -> the earlier rule that always wins."""
        result: dict[int, Policy] = {}
        for i, later in enumerate(self.policies):
            for earlier in self.policies[:i]:
                if earlier.memory_category == later.memory_category and _covers(earlier, later):
                    result[later.position] = earlier
                    break
        return result

    def warnings(self) -> list[str]:
        shadowed = self.shadowed_by()
        out: list[str] = []
        for later in self.policies:
            winner = shadowed.get(later.position)
            if winner is None:
                continue
            if winner.scope == later.scope:
                what = "duplicates" if winner.ttl == later.ttl else "has the same scope as"
                out.append(
                    f"{later.describe()} {what} {winner.describe()} and never applies: "
                    "the rule listed first wins"
                )
            else:
                out.append(
                    f"{later.describe()} can never apply: every record it matches is also "
                    f"matched by {winner.describe()}, which has as many dimensions and is "
                    "listed first"
                )
        for i, a in enumerate(self.policies):
            for b in self.policies[i + 1 :]:
                if (
                    a.memory_category != b.memory_category
                    or a.dimensions != b.dimensions
                    or b.position in shadowed
                    or a.position in shadowed
                    or not _compatible(a, b)
                ):
                    continue
                out.append(
                    f"tie: {a.describe()} and {b.describe()} can match the same record "
                    f"(for example a clause {_example_clause(a, b)}); {a.dimensions} "
                    f"dimension(s) each, so rule {a.position} wins because it is listed first"
                )
        return out

    def table(self) -> list[dict[str, Any]]:
        """The effective policy table, per category in precedence order, the default last."""
        shadowed = self.shadowed_by()
        rows: list[dict[str, Any]] = []
        for category in CATEGORIES:
            for p in self._ordered[category]:
                winner = shadowed.get(p.position)
                rows.append(
                    {
                        "rule": p.position,
                        "memory_category": category,
                        "scope": dict(p.scope),
                        "dimensions": p.dimensions,
                        "ttl": format_ttl(p.ttl),
                        "ttl_seconds": None if p.ttl is None else int(p.ttl.total_seconds()),
                        "shadowed_by": winner.position if winner else None,
                    }
                )
            default = DEFAULT_TTLS[category]
            rows.append(
                {
                    "rule": None,
                    "memory_category": category,
                    "scope": {},
                    "dimensions": 0,
                    "ttl": format_ttl(default),
                    "ttl_seconds": None if default is None else int(default.total_seconds()),
                    "shadowed_by": None,
                }
            )
        return rows


def _parse_ttl(raw: Any) -> tuple[timedelta | None, str | None]:
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        return None, f"ttl {raw!r} is not a duration: {_TTL_ALLOWED}"
    if isinstance(raw, int):
        return None, f"ttl {raw!r} has no unit: {_TTL_ALLOWED}"
    match = _TTL.match(raw)
    if not match:
        return None, f"ttl {raw!r} is not a duration: {_TTL_ALLOWED}"
    number, unit = int(match.group(1)), match.group(2)
    if unit in _SUB_DAY:
        return None, f"ttl {raw!r}: {_SUB_DAY[unit]} are not allowed, {_TTL_ALLOWED}"
    if unit not in _TTL_UNITS:
        return None, f"ttl {raw!r}: unknown unit {unit!r}, {_TTL_ALLOWED}"
    if number < 1:
        return None, f"ttl {raw!r} is below the minimum of 1d"
    if number * _TTL_UNITS[unit] > MAX_TTL_YEARS * 365:
        return None, (
            f"ttl {raw!r} is above the maximum of {MAX_TTL_YEARS}y: that is as good as never "
            f"expiring; write {MAX_TTL_YEARS}y"
        )
    return timedelta(days=number * _TTL_UNITS[unit]), None


def _check_value(dim: str, value: str) -> str | None:
    if not dim or "/" in dim:
        return f"scope dimension {dim!r} must be a non-empty name without '/'"
    if not value or any(not segment for segment in value.split("/")):
        return f"scope value {value!r} of {dim!r} must be non-empty segments separated by '/'"
    return None


def _parse_scope(raw: Any) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    problems: list[str] = []
    pairs: dict[str, str] = {}
    if raw is None:
        return (), problems
    if isinstance(raw, dict):
        items = []
        for dim, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                problems.append(f"scope value of {dim!r} must be a string, not {value!r}")
                continue
            items.append((str(dim), str(value)))
    elif isinstance(raw, list):
        items = []
        for path in raw:
            if not isinstance(path, str) or "/" not in path:
                problems.append(
                    f"scope path {path!r} must be 'dimension/value' (for example 'org/acme')"
                )
                continue
            dim, _, value = path.partition("/")
            items.append((dim, value))
    else:
        return (), [
            f"scope must be a map such as {{org: acme}} or a list of paths such as "
            f"['org/acme'], not {raw!r}"
        ]
    for dim, value in items:
        problem = _check_value(dim, value)
        if problem:
            problems.append(problem)
        elif dim in pairs:
            problems.append(f"scope dimension {dim!r} appears more than once")
        else:
            pairs[dim] = value
    return tuple(sorted(pairs.items())), problems


def _parse_rule(position: int, raw: Any) -> tuple[Policy | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"must be a map with keys {', '.join(RULE_KEYS)}, not {raw!r}"]
    problems: list[str] = []
    for key in raw:
        if key not in RULE_KEYS:
            problems.append(f"unknown key {key!r} (allowed: {', '.join(RULE_KEYS)})")
    scope, scope_problems = _parse_scope(raw.get("scope"))
    problems += scope_problems
    category = raw.get("memory_category")
    if category is None:
        problems.append(f"memory_category is required: one of {', '.join(CATEGORIES)}")
    elif category not in CATEGORIES:
        problems.append(
            f"memory_category {category!r} is unknown: use one of {', '.join(CATEGORIES)}"
        )
    ttl: timedelta | None = None
    if "ttl" not in raw:
        problems.append(f"ttl is required: {_TTL_ALLOWED}")
    else:
        ttl, problem = _parse_ttl(raw["ttl"])
        if problem:
            problems.append(problem)
    if problems:
        return None, problems
    return Policy(position=position, scope=scope, memory_category=category, ttl=ttl), []


def policy_problems(raw: Sequence[Any] | None) -> tuple[PolicySet, list[str]]:
    """Parse without raising: the set of the good rules, and every problem as
    `rule N: ...`."""
    if raw is None:
        raw = []
    if isinstance(raw, (str, bytes, dict)) or not isinstance(raw, Sequence):
        return PolicySet(), [f"must be a list of rules, not {raw!r}"]
    policies: list[Policy] = []
    problems: list[str] = []
    for position, item in enumerate(raw, start=1):
        policy, rule_problems = _parse_rule(position, item)
        problems += [f"rule {position}: {p}" for p in rule_problems]
        if policy:
            policies.append(policy)
    return PolicySet(policies), problems


def parse_policies(raw: Sequence[Any] | None) -> PolicySet:
    """The `retention:` list -> PolicySet; UsageError (exit 2) naming every bad rule."""
    policies, problems = policy_problems(raw)
    if problems:
        raise UsageError("; ".join(f"retention {p}" for p in problems))
    return policies
