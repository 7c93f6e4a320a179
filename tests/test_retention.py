"""The retention rule (spectron_backup.retention.decide), a pure function: hand-made cases and
hypothesis properties. The same rule over real stores is in test_prune.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectron_backup.config import KeepConfig
from spectron_backup.retention import EXPIRED, BackupFacts, Decision, decide

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday, ISO week 2026-W48


def facts(
    time: datetime, *, drill: bool = False, n: int = 0, tiers=("daily",), damage: str = ""
) -> BackupFacts:
    return BackupFacts(
        f"{time:%Y%m%dT%H%M%SZ}-{n:06x}", time, frozenset(tiers), drill, damage=damage
    )


def kept(decisions: list[Decision]) -> set[str]:
    return {d.backup_id for d in decisions if d.action == "keep"}


def by_id(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.backup_id: d for d in decisions}


# --- hand-made cases ------------------------------------------------------------------------------


def test_one_decision_per_backup_newest_first_whatever_the_input_order():
    backups = [facts(NOW - timedelta(days=d)) for d in (3, 0, 40, 1)]
    decisions = decide(backups, KeepConfig(), NOW)
    assert [d.backup_id for d in decisions] == [
        b.backup_id for b in sorted(backups, key=lambda b: b.time, reverse=True)
    ]


def test_daily_window_is_inclusive_and_reasons_name_every_rule():
    edge = facts(NOW - timedelta(days=30))
    past = facts(NOW - timedelta(days=30, seconds=1), n=1)
    keep = KeepConfig(weekly_days=0, min_keep=1)
    decisions = by_id(decide([edge, past], keep, NOW))
    assert decisions[edge.backup_id].reasons == (
        "daily: within 30 days",
        "min_keep: one of the 1 newest complete backups",
    )
    assert decisions[past.backup_id] == Decision(past.backup_id, "delete", (EXPIRED,))


def test_weekly_is_the_first_backup_of_the_iso_week_still_present():
    # ISO week 2025-W48 (Monday 24 November 2025) straddles the end of the weekly window.
    monday = facts(datetime(2025, 11, 24, 2, tzinfo=UTC))
    tuesday = facts(datetime(2025, 11, 25, 14, tzinfo=UTC))
    wednesday = facts(datetime(2025, 11, 26, 2, tzinfo=UTC))
    recent = [facts(NOW - timedelta(days=d)) for d in range(3)]
    keep = KeepConfig()  # daily 30, weekly 365, min_keep 3
    decisions = by_id(decide([monday, tuesday, wednesday, *recent], keep, NOW))
    assert NOW - monday.time > timedelta(days=365)  # Monday is the weekly, but too old
    assert decisions[monday.backup_id].reasons == (EXPIRED,)
    # Tuesday is younger than a year but not the weekly: superseded, and says by which.
    assert decisions[tuesday.backup_id].action == "delete"
    assert decisions[tuesday.backup_id].reasons == (
        "superseded: within the weekly window of 365 days, but not the first complete "
        f"backup of ISO week 2025-W48 (that is {monday.backup_id})",
    )

    # Monday deleted by hand: Tuesday is the weekly now, whatever its manifest says.
    decisions = by_id(decide([tuesday, wednesday, *recent], keep, NOW))
    assert decisions[tuesday.backup_id].reasons == (
        "weekly: first complete backup of ISO week 2025-W48, within 365 days",
    )
    assert decisions[wednesday.backup_id].action == "delete"


def test_iso_week_not_calendar_week_across_new_year():
    # 2026-12-31 (Thursday) and 2027-01-01 (Friday) are both in ISO week 2026-W53.
    now = datetime(2027, 1, 10, tzinfo=UTC)
    thursday = facts(datetime(2026, 12, 31, 2, tzinfo=UTC))
    friday = facts(datetime(2027, 1, 1, 2, tzinfo=UTC))
    keep = KeepConfig(daily_days=0, min_keep=1)
    decisions = by_id(decide([thursday, friday], keep, now))
    assert decisions[thursday.backup_id].reasons == (
        "weekly: first complete backup of ISO week 2026-W53, within 365 days",
    )
    assert decisions[friday.backup_id].reasons == (
        "min_keep: one of the 1 newest complete backups",
    )


def test_monthly_and_yearly_tiers():
    keep = KeepConfig(daily_days=0, weekly_days=0, monthly_days=100, yearly_days=800, min_keep=1)
    first_may = facts(datetime(2026, 5, 1, 2, tzinfo=UTC))  # 208 days: too old for monthly
    first_sept = facts(datetime(2026, 9, 2, 2, tzinfo=UTC))
    later_sept = facts(datetime(2026, 9, 20, 2, tzinfo=UTC))
    first_2025 = facts(datetime(2025, 1, 3, 2, tzinfo=UTC))
    first_2026 = facts(datetime(2026, 1, 1, 2, tzinfo=UTC))
    newest = facts(NOW - timedelta(hours=1))
    backups = [first_may, first_sept, later_sept, first_2025, first_2026, newest]
    decisions = by_id(decide(backups, keep, NOW))
    assert decisions[first_sept.backup_id].reasons == (
        "monthly: first complete backup of month 2026-09, within 100 days",
    )
    assert decisions[later_sept.backup_id].action == "delete"
    assert decisions[first_may.backup_id].action == "delete"
    assert decisions[first_2025.backup_id].reasons == (
        "yearly: first complete backup of year 2025, within 800 days",
    )
    assert decisions[first_2026.backup_id].reasons == (  # first of 2026-01 too, but 328 days
        "yearly: first complete backup of year 2026, within 800 days",
    )
    assert decisions[newest.backup_id].action == "keep"


def test_min_keep_holds_when_everything_is_old():
    backups = [facts(NOW - timedelta(days=800 + d)) for d in range(6)]
    decisions = decide(backups, KeepConfig(), NOW)
    assert [d.action for d in decisions] == ["keep"] * 3 + ["delete"] * 3
    assert all(
        d.reasons == ("min_keep: one of the 3 newest complete backups",) for d in decisions[:3]
    )


def test_newest_passed_drill_survives_even_when_old():
    old = [facts(NOW - timedelta(days=800 + d), drill=d in (4, 5)) for d in range(7)]
    decisions = decide(old, KeepConfig(), NOW)
    assert kept(decisions) == {
        old[0].backup_id,
        old[1].backup_id,
        old[2].backup_id,
        old[4].backup_id,
    }
    assert by_id(decisions)[old[4].backup_id].reasons == (
        "drilled: newest backup with a passed restore drill",
    )


def test_backups_from_the_future_are_kept_and_take_no_min_keep_place():
    future = facts(NOW + timedelta(hours=3))
    old = [facts(NOW - timedelta(days=800 + d)) for d in range(3)]
    keep = KeepConfig(min_keep=2)
    decisions = decide([future, *old], keep, NOW)
    assert decisions[0].backup_id == future.backup_id
    assert decisions[0].reasons == ("future: taken 3:00:00 after now (clock skew?), kept",)
    assert [d.action for d in decisions] == ["keep", "keep", "keep", "delete"]


def test_a_backup_taken_as_weekly_is_kept_for_the_weekly_window():
    # The weekly deployment runs on Sundays with --tier weekly; Monday's daily backup is the
    # first of the ISO week. Sixty days later both are past the daily window.
    monday = facts(datetime(2026, 9, 21, 2, tzinfo=UTC))
    daily = [facts(datetime(2026, 9, 21 + d, 2, tzinfo=UTC)) for d in range(1, 6)]
    sunday = facts(datetime(2026, 9, 27, 3, tzinfo=UTC), tiers=("daily", "weekly"))
    recent = [facts(NOW - timedelta(days=d)) for d in range(3)]
    decisions = by_id(decide([monday, *daily, sunday, *recent], KeepConfig(), NOW))
    assert decisions[sunday.backup_id].reasons == (
        "weekly: taken as a weekly backup, within 365 days",
    )
    assert decisions[monday.backup_id].action == "keep"  # still the first of its week
    assert all(decisions[b.backup_id].action == "delete" for b in daily)
    # Past the weekly window it goes like any other.
    later = NOW + timedelta(days=400)
    assert by_id(decide([sunday, *recent], KeepConfig(), later))[sunday.backup_id].reasons == (
        EXPIRED,
    )


def test_a_damaged_backup_counts_for_no_tier_min_keep_or_drill():
    damage = "backup x is damaged: backups/x/acme/prod.surql.zst is missing"
    # Old backups, the newest three damaged: min_keep keeps the three newest intact ones.
    old = [facts(NOW - timedelta(days=800 + d), damage=damage if d < 3 else "") for d in range(6)]
    decisions = by_id(decide(old, KeepConfig(), NOW))
    assert [decisions[b.backup_id].action for b in old] == ["delete"] * 3 + ["keep"] * 3
    assert decisions[old[0].backup_id].reasons == (EXPIRED,)
    # A damaged Monday is not the week's weekly: Tuesday is.
    monday = facts(datetime(2026, 6, 1, 2, tzinfo=UTC), damage=damage, drill=True)
    tuesday = facts(datetime(2026, 6, 2, 2, tzinfo=UTC))
    recent = [facts(NOW - timedelta(days=d)) for d in range(3)]
    decisions = by_id(decide([monday, tuesday, *recent], KeepConfig(), NOW))
    assert decisions[monday.backup_id].action == "delete"
    assert decisions[monday.backup_id].reasons == (
        f"damaged: within the weekly window of 365 days, but {damage}",
    )
    assert decisions[tuesday.backup_id].reasons == (
        "weekly: first complete backup of ISO week 2026-W23, within 365 days",
    )
    # Within the daily window a damaged backup is kept like any other (it ages out).
    fresh = facts(NOW - timedelta(days=1), damage=damage)
    assert by_id(decide([fresh], KeepConfig(), NOW))[fresh.backup_id].reasons == (
        "daily: within 30 days",
    )


def test_zero_days_disables_a_tier():
    backups = [facts(NOW - timedelta(days=d)) for d in range(10)]
    keep = KeepConfig(daily_days=0, weekly_days=0, min_keep=1)
    assert len(kept(decide(backups, keep, NOW))) == 1


def test_bad_input():
    with pytest.raises(ValueError, match="timezone-aware"):
        decide([], KeepConfig(), datetime(2026, 1, 1))
    one = facts(NOW)
    with pytest.raises(ValueError, match="duplicate"):
        decide([one, one], KeepConfig(), NOW)
    assert decide([], KeepConfig(), NOW) == []


# --- properties -----------------------------------------------------------------------------------

HOUR = timedelta(hours=1)


@st.composite
def histories(draw) -> list[BackupFacts]:
    """Up to 60 backups over 2.5 years (hour resolution, so that periods get several),
    a few possibly in the future, some with passed drills."""
    offsets = draw(st.lists(st.integers(-48, 900 * 24), max_size=60))
    result = []
    for n, hours in enumerate(offsets):
        time = NOW - hours * HOUR
        result.append(facts(time, drill=draw(st.booleans()) and draw(st.booleans()), n=n))
    return result


windows = st.integers(0, 400) | st.sampled_from([0, 1, 7, 30, 365])


@st.composite
def policies(draw) -> KeepConfig:
    return KeepConfig(
        daily_days=draw(windows),
        weekly_days=draw(windows),
        monthly_days=draw(windows | st.just(0)),
        yearly_days=draw(st.integers(0, 1200) | st.just(0)),
        min_keep=draw(st.integers(1, 8)),
    )


@st.composite
def looser(draw, strict: KeepConfig) -> KeepConfig:
    more = st.integers(0, 300)
    return KeepConfig(
        daily_days=strict.daily_days + draw(more),
        weekly_days=strict.weekly_days + draw(more),
        monthly_days=strict.monthly_days + draw(more),
        yearly_days=strict.yearly_days + draw(more),
        min_keep=strict.min_keep + draw(st.integers(0, 5)),
    )


PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)


@PROPERTY
@given(histories(), policies())
def test_property_one_decision_per_backup(backups, keep):
    decisions = decide(backups, keep, NOW)
    assert sorted(d.backup_id for d in decisions) == sorted(b.backup_id for b in backups)
    times = [b.time for b in sorted(backups, key=lambda b: (b.time, b.backup_id), reverse=True)]
    by = {b.backup_id: b.time for b in backups}
    assert [by[d.backup_id] for d in decisions] == times
    assert all(d.reasons for d in decisions)


@PROPERTY
@given(histories(), policies())
def test_property_pruning_twice_equals_pruning_once(backups, keep):
    first = decide(backups, keep, NOW)
    survivors = [b for b in backups if b.backup_id in kept(first)]
    second = decide(survivors, keep, NOW)
    assert all(d.action == "keep" for d in second)


@PROPERTY
@given(histories(), st.data())
def test_property_a_looser_policy_never_deletes_what_a_stricter_keeps(backups, data):
    strict = data.draw(policies())
    loose = data.draw(looser(strict))
    assert kept(decide(backups, strict, NOW)) <= kept(decide(backups, loose, NOW))


@PROPERTY
@given(histories(), policies())
def test_property_never_fewer_than_min_keep(backups, keep):
    remaining = kept(decide(backups, keep, NOW))
    assert len(remaining) >= min(keep.min_keep, len(backups))
    # ... and they are the newest ones among those taken by now.
    present = sorted(
        (b for b in backups if b.time <= NOW), key=lambda b: (b.time, b.backup_id), reverse=True
    )
    assert {b.backup_id for b in present[: keep.min_keep]} <= remaining


@PROPERTY
@given(histories(), policies())
def test_property_newest_drilled_backup_is_kept(backups, keep):
    drilled = [b for b in backups if b.drill_passed]
    if drilled:
        newest = max(drilled, key=lambda b: (b.time, b.backup_id))
        assert newest.backup_id in kept(decide(backups, keep, NOW))
