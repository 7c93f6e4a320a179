"""The retention rule (design section 5) as a pure function: which backups to keep, and why.

Grandfather-father-son over the complete backups only, with safety floors:

* daily: every backup at most `daily_days` old;
* weekly: the weekly of an ISO week (UTC) is its first complete backup still present, kept
  while at most `weekly_days` old;
* monthly / yearly (optional): the first complete backup of each calendar month / year,
  kept while at most `monthly_days` / `yearly_days` old;
* min_keep: the `min_keep` newest complete backups are always kept;
* drilled: the newest backup with a passed restore drill is never deleted;
* a backup taken after `now` (clock skew) is kept;
* a damaged backup (an object its manifest lists is missing or of another size) is kept only
  by the daily window or as a future backup: it is no weekly/monthly/yearly, takes no
  min_keep place and is not the drilled backup, so it never stands in for an intact one.

A backup whose manifest records a tier (taken with `--tier weekly`, or the first of its week
when it was taken) is kept by that tier's window too, besides the period's first.

A backup is kept if any rule keeps it; a window of 0 days disables its tier. Every decision
carries every rule that kept the backup (or why none did), for the prune report.

Why the period's first backup is derived from the set, not only read from the manifest's
`tiers`: the tiers a manifest records are what the backup was *when it was taken*. If the Monday
backup of a week is deleted by hand (or failed and was garbage-collected), Tuesday's backup
is now the first of the week and must become the weekly; trusting Tuesday's manifest (which
says "daily") would leave the week without any weekly. Deriving it from the backups present
also makes pruning idempotent: a kept first-of-period stays first among the survivors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from spectron_backup.config import KeepConfig

__all__ = ["EXPIRED", "BackupFacts", "Decision", "decide"]

#: The reason of a backup deleted because it is past every window of the policy.
EXPIRED = "expired: older than every window"


@dataclass(frozen=True)
class BackupFacts:
    """What the rule needs to know about one complete backup."""

    backup_id: str
    time: datetime
    """When it was taken, timezone-aware UTC (from the backup id)."""
    tiers: frozenset[str]
    """The tiers its manifest records (daily/weekly/monthly/yearly): each keeps it within that
    tier's window, besides being its period's first (see the module docstring)."""
    drill_passed: bool
    """True if any restore drill of it passed."""
    damage: str = ""
    """Why it is damaged (an object missing or of another size), or empty when intact."""


@dataclass(frozen=True)
class Decision:
    backup_id: str
    action: Literal["keep", "delete"]
    reasons: tuple[str, ...]
    """Every rule that kept the backup; for a deletion, why no rule did: EXPIRED, or a
    `superseded: ...` line per tier whose window it is in without being its period's first."""


def _period_rules(keep: KeepConfig) -> list[tuple[str, int, Callable[[datetime], str], str]]:
    """(tier, window in days, period label of a time, what the period is called)."""
    rules: list[tuple[str, int, Callable[[datetime], str], str]] = []
    if keep.weekly_days > 0:

        def iso_week(t: datetime) -> str:
            year, week, _ = t.isocalendar()
            return f"{year}-W{week:02d}"

        rules.append(("weekly", keep.weekly_days, iso_week, "ISO week"))
    if keep.monthly_days > 0:
        rules.append(("monthly", keep.monthly_days, lambda t: f"{t:%Y-%m}", "month"))
    if keep.yearly_days > 0:
        rules.append(("yearly", keep.yearly_days, lambda t: f"{t:%Y}", "year"))
    return rules


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def decide(backups: Sequence[BackupFacts], keep: KeepConfig, now: datetime) -> list[Decision]:
    """One decision per backup, newest first. `backups` are the complete backups present
    (order does not matter); `now` must be timezone-aware."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    now = now.astimezone(UTC)
    ids = [b.backup_id for b in backups]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate backup ids")
    for b in backups:
        if b.time.tzinfo is None:
            raise ValueError(f"backup {b.backup_id}: time must be timezone-aware (UTC)")

    def order(b: BackupFacts) -> tuple[datetime, str]:
        return (b.time, b.backup_id)

    newest_first = sorted(backups, key=order, reverse=True)
    times = {b.backup_id: b.time.astimezone(UTC) for b in backups}
    reasons: dict[str, list[str]] = {b.backup_id: [] for b in backups}
    misses: dict[str, list[str]] = {b.backup_id: [] for b in backups}

    # Clock skew: a backup from the future is kept and takes no min_keep place.
    present = []
    for b in newest_first:
        if times[b.backup_id] > now:
            ahead = times[b.backup_id] - now
            reasons[b.backup_id].append(f"future: taken {ahead} after now (clock skew?), kept")
        else:
            present.append(b)

    def age(b: BackupFacts) -> timedelta:
        return now - times[b.backup_id]

    if keep.daily_days > 0:
        window = timedelta(days=keep.daily_days)
        for b in present:
            if age(b) <= window:
                reasons[b.backup_id].append(f"daily: within {_days(keep.daily_days)}")

    intact = [b for b in present if not b.damage]
    for tier, days, label, period_name in _period_rules(keep):
        window = timedelta(days=days)
        first: dict[str, BackupFacts] = {}
        for b in sorted(backups, key=order):  # oldest first: the first seen is the first
            if not b.damage:
                first.setdefault(label(times[b.backup_id]), b)
        for b in present:
            if age(b) > window:
                continue
            period = label(times[b.backup_id])
            first_of_period = first.get(period)
            if b.damage:
                misses[b.backup_id].append(
                    f"damaged: within the {tier} window of {_days(days)}, but {b.damage}"
                )
            elif first_of_period is b:
                reasons[b.backup_id].append(
                    f"{tier}: first complete backup of {period_name} {period}, within {_days(days)}"
                )
            elif tier in b.tiers:
                reasons[b.backup_id].append(
                    f"{tier}: taken as a {tier} backup, within {_days(days)}"
                )
            else:
                assert first_of_period is not None  # b itself is an intact backup of the period
                misses[b.backup_id].append(
                    f"superseded: within the {tier} window of {_days(days)}, but not the "
                    f"first complete backup of {period_name} {period} "
                    f"(that is {first_of_period.backup_id})"
                )

    for b in intact[: keep.min_keep]:
        reasons[b.backup_id].append(f"min_keep: one of the {keep.min_keep} newest complete backups")

    drilled = next((b for b in newest_first if b.drill_passed and not b.damage), None)
    if drilled is not None:
        reasons[drilled.backup_id].append("drilled: newest backup with a passed restore drill")

    decisions = []
    for b in newest_first:
        kept_by = reasons[b.backup_id]
        if kept_by:
            decisions.append(Decision(b.backup_id, "keep", tuple(kept_by)))
        else:
            why = misses[b.backup_id] or [EXPIRED]
            decisions.append(Decision(b.backup_id, "delete", tuple(why)))
    return decisions
