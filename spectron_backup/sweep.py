"""The expire sweep's core (design section 7): hard-delete expired memory in one Context database.

Per table (default layout of design section 2): `entity`, `attribute`, `relates_to` take their
category from `memory_category`; `instruction` is the `instructions` category and
`uncertainty` the `unknowns` category. Tables that do not exist are skipped.

A record is expired when

* `valid_until != NONE AND valid_until < now - grace` (reason `valid_until`; the explicit
  `!= NONE` matters: NONE sorts before every datetime, so `valid_until < $t` alone matches
  records without a `valid_until`), or
* `created_at + ttl < now`, the TTL being the one its scope resolves to (reason `ttl`).
  Indefinite TTLs never expire, and a record whose `valid_until` lies after `now` is never
  touched. Only records with `created_at < now - (smallest finite TTL of the category)` are
  read as candidates; each is then resolved in Python from its scope clauses
  (`scope.paths`, which the engine returns as a list of path lists).

Candidates are read in pages (`WHERE ... AND id > <last id> LIMIT batch_size`), ids kept as
the engine's own `<string>` literals. Attributes and relations are decided first; an expired
entity still referred to by an attribute or relation that survives this sweep is held (deleting
a node deletes its edges and would orphan its attributes). The guard then refuses, per table,
to delete more than `max_delete_fraction` of the table's records unless forced. Deletion runs
in batches of `batch_size`, each `BEGIN; DELETE [...]; COMMIT;`, attributes and relations
before entities. A dry run computes the same report and deletes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from spectron_backup.policies import DEFAULT_TTLS, PolicySet
from spectron_backup.surreal import SurrealConnection, surreal_identifier

Reason = Literal["valid_until", "ttl"]
#: the `policy` of a record expired by its own `valid_until`
NO_POLICY = "-"
SAMPLES = 5
MEMORY_CATEGORIES = ("identity", "knowledge", "context")


@dataclass(frozen=True)
class SweepTable:
    name: str
    #: a fixed category, or None: the record's `memory_category` field
    category: str | None = None
    #: graph nodes that attributes (`attribute.entity`) and relations point at
    is_entity: bool = False


DEFAULT_TABLES: tuple[SweepTable, ...] = (
    SweepTable("attribute"),
    SweepTable("relates_to"),
    SweepTable("instruction", category="instructions"),
    SweepTable("uncertainty", category="unknowns"),
    SweepTable("entity", is_entity=True),
)
ATTRIBUTE_TABLE = "attribute"
RELATION_TABLE = "relates_to"

Key = tuple[str, str, str, str]  # (table, category, reason, policy)


@dataclass
class SweepItem:
    table: str
    category: str
    reason: Reason
    policy: str
    ids: list[str]


@dataclass
class Refusal:
    table: str
    would_delete: int
    total: int
    max_delete_fraction: float

    def describe(self) -> str:
        return (
            f"{self.table}: would delete {self.would_delete} of {self.total} records, more than "
            f"the allowed share {self.max_delete_fraction:g}; nothing deleted (use --force)"
        )


@dataclass
class SweepReport:
    namespace: str
    database: str
    dry_run: bool
    now: datetime
    context: str | None = None
    forced: bool = False
    deleted: dict[Key, int] = field(default_factory=dict)
    samples: dict[Key, list[str]] = field(default_factory=dict)
    held: int = 0
    held_samples: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    #: table -> record count before the sweep
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())

    def items(self) -> list[SweepItem]:
        """One item per (table, category, reason, policy), with its sample ids."""
        return [
            SweepItem(table, category, reason, policy, list(self.samples.get(key, [])))  # type: ignore[arg-type]
            for key in sorted(self.deleted)
            for table, category, reason, policy in (key,)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "namespace": self.namespace,
            "database": self.database,
            "dry_run": self.dry_run,
            "forced": self.forced,
            "now": self.now.isoformat(),
            "deleted_total": self.total_deleted,
            "deleted": [
                {
                    "table": table,
                    "category": category,
                    "reason": reason,
                    "policy": policy,
                    "count": count,
                    "sample_ids": self.samples.get((table, category, reason, policy), []),
                }
                for (table, category, reason, policy), count in sorted(self.deleted.items())
            ],
            "held": {"count": self.held, "sample_ids": list(self.held_samples)},
            "refused": [
                {
                    "table": r.table,
                    "would_delete": r.would_delete,
                    "total": r.total,
                    "max_delete_fraction": r.max_delete_fraction,
                    "message": r.describe(),
                }
                for r in self.refused
            ],
            "totals": dict(self.totals),
        }


def datetime_literal(moment: datetime) -> str:
    """A SurrealQL datetime literal (UTC, microseconds)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    return f"d'{text}Z'"


def _policy_name(resolution: Any) -> str:
    if resolution.policy is None:
        return "default"
    return f"rule {resolution.policy.position}"


def min_finite_ttl(policies: PolicySet, category: str) -> timedelta | None:
    """The shortest finite TTL any record of the category can get (None: all indefinite)."""
    ttls = [p.ttl for p in policies.for_category(category)] + [DEFAULT_TTLS[category]]
    finite = [t for t in ttls if t is not None]
    return min(finite) if finite else None


def _pages(conn: SurrealConnection, base: str, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """`base` is `SELECT <string> id AS id, ... FROM t WHERE <cond>`; yields pages in id order.

    Each page is `... AND id > <last id> ORDER BY rid LIMIT n` with `rid` the raw record id.
    The ORDER BY is required: when an index serves `<cond>` (valid_until, or
    memory_category + created_at) the engine returns rows in index order, not id order, and
    `id > last` without it would skip records. It sorts by the record id itself (EXPLAIN:
    `SortTopKByKey [sort_keys: id ASC]`), not by the `<string>` text, whose order differs
    (`t:10` < `t:9`).
    """
    base = base.replace("SELECT <string> id AS id", "SELECT id AS rid, <string> id AS id", 1)
    last: str | None = None
    while True:
        query = base + (f" AND id > {last}" if last is not None else "")
        rows = conn.run_one(f"{query} ORDER BY rid LIMIT {batch_size}") or []
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        last = rows[-1]["id"]


def _count(conn: SurrealConnection, table: str) -> int:
    rows = conn.run_one(f"SELECT count() FROM {surreal_identifier(table)} GROUP ALL") or []
    return int(rows[0]["count"]) if rows else 0


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Plan:
    """What one table would lose: id -> (category, reason, policy), in discovery order."""

    def __init__(self, table: SweepTable) -> None:
        self.table = table
        self.doomed: dict[str, tuple[str, Reason, str]] = {}

    def add(self, record_id: str, category: str, reason: Reason, policy: str) -> None:
        self.doomed.setdefault(record_id, (category, reason, policy))


def _expired_by_valid_until(
    conn: SurrealConnection, plan: _Plan, cutoff: str, batch_size: int
) -> None:
    table = plan.table
    category_expr = "memory_category" if table.category is None else "NONE"
    base = (
        f"SELECT <string> id AS id, {category_expr} AS category "
        f"FROM {surreal_identifier(table.name)} "
        f"WHERE valid_until != NONE AND valid_until < {cutoff}"
    )
    for page in _pages(conn, base, batch_size):
        for row in page:
            category = table.category or row.get("category")
            if not isinstance(category, str):
                category = "unknown"
            plan.add(row["id"], category, "valid_until", NO_POLICY)


def _expired_by_ttl(
    conn: SurrealConnection,
    plan: _Plan,
    policies: PolicySet,
    now: datetime,
    batch_size: int,
) -> None:
    table = plan.table
    now_lit = datetime_literal(now)
    categories = (table.category,) if table.category else MEMORY_CATEGORIES
    for category in categories:
        shortest = min_finite_ttl(policies, category)
        if shortest is None:
            continue  # indefinite everywhere: never expires by age
        where = [f"created_at < {datetime_literal(now - shortest)}"]
        if table.category is None:
            where.insert(0, f"memory_category = '{category}'")
        # never touch a record that is still valid (valid_until after now)
        where.append(f"(valid_until = NONE OR valid_until <= {now_lit})")
        base = (
            "SELECT <string> id AS id, created_at, scope.paths AS clauses "
            f"FROM {surreal_identifier(table.name)} WHERE " + " AND ".join(where)
        )
        for page in _pages(conn, base, batch_size):
            for row in page:
                clauses = [c for c in (row.get("clauses") or []) if isinstance(c, list)]
                resolution = policies.resolve(clauses, category)
                created = row.get("created_at")
                if resolution.ttl is None or not isinstance(created, datetime):
                    continue
                if created + resolution.ttl < now:
                    plan.add(row["id"], category, "ttl", _policy_name(resolution))


def _surviving_referrers(
    conn: SurrealConnection,
    entity_ids: list[str],
    existing: set[str],
    doomed: set[str],
    batch_size: int,
) -> dict[str, list[str]]:
    """entity id -> ids of attributes/relations that refer to it and survive the sweep."""
    out: dict[str, list[str]] = {}
    for chunk in _chunks(entity_ids, batch_size):
        literal = "[" + ", ".join(chunk) + "]"
        if ATTRIBUTE_TABLE in existing:
            rows = conn.run_one(
                f"SELECT VALUE [<string> id, <string> entity] FROM {ATTRIBUTE_TABLE} "
                f"WHERE entity IN {literal}"
            )
            for attr_id, entity_id in rows or []:
                if attr_id not in doomed:
                    out.setdefault(entity_id, []).append(attr_id)
        if RELATION_TABLE in existing:
            rows = conn.run_one(
                f"SELECT <string> id AS id, (<->{RELATION_TABLE}).map(|$r| <string> $r) AS edges "
                f"FROM {literal}"
            )
            for row in rows or []:
                for edge in row.get("edges") or []:
                    if edge not in doomed:
                        out.setdefault(row["id"], []).append(edge)
    return out


def sweep_database(
    conn: SurrealConnection,
    ns: str,
    db: str,
    policies: PolicySet,
    *,
    now: datetime,
    dry_run: bool,
    batch_size: int = 1000,
    max_delete_fraction: float = 0.5,
    valid_until_grace: timedelta = timedelta(0),
    force: bool = False,
    context: str | None = None,
    tables: Sequence[SweepTable] = DEFAULT_TABLES,
) -> SweepReport:
    """Sweep one Context database; see the module docstring. The database must exist."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    report = SweepReport(
        namespace=ns, database=db, dry_run=dry_run, now=now, context=context, forced=force
    )
    conn.use_existing(ns, db)  # USE would create a missing database
    existing = set((conn.run_one("INFO FOR DB") or {}).get("tables", {}))
    present = [t for t in tables if t.name in existing]
    cutoff = datetime_literal(now - valid_until_grace)

    plans: list[_Plan] = []
    doomed_edges: set[str] = set()  # attribute and relation ids that will go
    # non-entity tables first: whether an entity is held depends on what survives of them
    for table in sorted(present, key=lambda t: t.is_entity):
        plan = _Plan(table)
        _expired_by_valid_until(conn, plan, cutoff, batch_size)
        _expired_by_ttl(conn, plan, policies, now, batch_size)
        if table.is_entity and plan.doomed:
            referrers = _surviving_referrers(
                conn, list(plan.doomed), existing, doomed_edges, batch_size
            )
            for entity_id in list(plan.doomed):
                if entity_id in referrers:
                    del plan.doomed[entity_id]
                    report.held += 1
                    if len(report.held_samples) < SAMPLES:
                        report.held_samples.append(entity_id)
        total = _count(conn, table.name)
        report.totals[table.name] = total
        if plan.doomed and len(plan.doomed) > max_delete_fraction * total and not force:
            report.refused.append(Refusal(table.name, len(plan.doomed), total, max_delete_fraction))
            plan.doomed.clear()
        if not table.is_entity:
            doomed_edges.update(plan.doomed)
        plans.append(plan)

    for plan in plans:
        for record_id, (category, reason, policy) in plan.doomed.items():
            key = (plan.table.name, category, reason, policy)
            report.deleted[key] = report.deleted.get(key, 0) + 1
            samples = report.samples.setdefault(key, [])
            if len(samples) < SAMPLES:
                samples.append(record_id)

    if not dry_run:
        for plan in plans:  # already ordered: attributes and relations before entities
            for chunk in _chunks(list(plan.doomed), batch_size):
                conn.run(f"BEGIN; DELETE [{', '.join(chunk)}]; COMMIT;")
    return report
