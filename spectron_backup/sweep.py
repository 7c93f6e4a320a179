"""The expire sweep's core (design section 7): hard-delete expired memory in one Context database.

Tables and fields are configuration (`sweep.tables`, `sweep.fields`; defaults of design
section 2): `entity`, `attribute`, `relates_to` take their category from `memory_category`;
`instruction` is the `instructions` category and `uncertainty` the `unknowns` category.
Tables that do not exist are skipped.

A record is expired when

* `valid_until >= <earliest datetime> AND valid_until < now - grace` (reason `valid_until`;
  the lower bound matters: NONE, NULL, strings, numbers and durations all sort before every
  datetime, so `valid_until < $t` alone matches records without a datetime there), or
* `created_at + ttl < now`, the TTL being the one its scope resolves to (reason `ttl`).
  Indefinite TTLs never expire, and a record whose `valid_until` lies after `now`, or is
  neither NONE, NULL nor a datetime, is never touched. Only records with `created_at < now - (smallest finite TTL of the category)` are
  read as candidates; each is then resolved in Python from its scope clauses
  (`scope.paths`, which the engine returns as a list of path lists).

Plan, then delete. Candidates are read in pages (`WHERE ... AND id > <last id> LIMIT n`);
attributes and relations are decided first; an expired entity still referred to by an
attribute or relation that survives this sweep is held (deleting a node deletes its edges and
would orphan its attributes). The guard then refuses, per table, to delete more than
`max_delete_fraction` of the table's records unless forced; up to `guard_allowance` records
are always allowed, so a small table whose few records all expired (a quiet Context) does
not fail every hourly run. The plan keeps the ids it will
delete (memory grows with what is deleted, not with the table).

Deletion runs in batches of `batch_size`, each one transaction, attributes and relations
before entities, and each DELETE re-checks in its WHERE what made the record expire, so a
record that a writer changed after the plan was made (a `valid_until` moved into the future,
a record moved to another scope, whose policy may give it a longer TTL, a new attribute or
edge on an entity) is left alone: an entity is deleted only if, inside
the same transaction, no attribute and no relation refers to it. The report counts what was
actually deleted; what the re-check spared is counted as `changed` (entities: as held). A
dry run reports the plan and deletes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from spectron_backup.config import GUARD_ALLOWANCE, SweepFieldsConfig, SweepTablesConfig
from spectron_backup.errors import UsageError
from spectron_backup.policies import DEFAULT_TTLS, PolicySet
from spectron_backup.surreal import SurrealConnection, surreal_identifier

Reason = Literal["valid_until", "ttl"]
#: the `policy` of a record expired by its own `valid_until`
NO_POLICY = "-"
SAMPLES = 5
MEMORY_CATEGORIES = ("identity", "knowledge", "context")
#: candidates read per query; larger than a delete batch because each page of an
#: index-served read is a sort over the remaining matches (see `_pages`)
MIN_PAGE_SIZE = 10_000


@dataclass(frozen=True)
class SweepTable:
    name: str
    #: a fixed category, or None: the record's `memory_category` field
    category: str | None = None
    #: graph nodes that attributes and relations point at
    is_entity: bool = False


def sweep_tables(names: SweepTablesConfig) -> tuple[SweepTable, ...]:
    """The swept tables, in planning order: whether an entity is held depends on what
    survives of the attributes and relations, so entities come last."""
    return (
        SweepTable(names.attribute),
        SweepTable(names.relation),
        SweepTable(names.instruction, category="instructions"),
        SweepTable(names.uncertainty, category="unknowns"),
        SweepTable(names.entity, is_entity=True),
    )


_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _readable(name: str) -> str:
    """A name as an operator would type it: plain when it can be, quoted otherwise."""
    return name if _PLAIN_NAME.match(name) else surreal_identifier(name)


def index_advice(
    table: SweepTable, info: dict[str, Any], fields: SweepFieldsConfig | None = None
) -> list[str]:
    """`DEFINE INDEX` statements the sweep's reads would use on `table`, given its
    INFO FOR TABLE. A range on `valid_until` (or `created_at`) uses an index whose first field
    is that field; for `created_at` on a table with `memory_category`, an index on
    `memory_category, created_at` serves as well (the read is per category)."""
    f = fields or SweepFieldsConfig()
    defined = set((info.get("fields") or {}).keys())
    leading = [index_fields(str(d)) for d in (info.get("indexes") or {}).values()]
    firsts = {fs[0] for fs in leading if fs}
    pairs = {tuple(fs[:2]) for fs in leading if len(fs) >= 2}
    name = _readable(table.name)
    advice = []
    if f.valid_until in defined and f.valid_until not in firsts:
        advice.append(
            f"DEFINE INDEX sweep_valid_until ON {name} FIELDS {_readable(f.valid_until)};"
        )
    if f.created_at in defined and f.created_at not in firsts:
        created = _readable(f.created_at)
        if table.category is None and f.memory_category in defined:
            if (f.memory_category, f.created_at) not in pairs:
                advice.append(
                    f"DEFINE INDEX sweep_created_at ON {name} "
                    f"FIELDS {_readable(f.memory_category)}, {created};"
                )
        else:
            advice.append(f"DEFINE INDEX sweep_created_at ON {name} FIELDS {created};")
    return advice


_INDEX_FIELDS = re.compile(
    r"\b(?:FIELDS|COLUMNS)\s+(.+?)"
    r"(?:\s+(?:UNIQUE|HNSW|MTREE|SEARCH|FULLTEXT|COMMENT|CONCURRENTLY)\b|;|$)",
    re.I,
)


def index_fields(definition: str) -> list[str]:
    """The field list of a `DEFINE INDEX ... FIELDS a, b` statement."""
    match = _INDEX_FIELDS.search(definition)
    if not match:
        return []
    return [f.strip().strip("`") for f in match.group(1).split(",") if f.strip()]


Key = tuple[str, str, str, str]  # (table, category, reason, policy)


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

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "would_delete": self.would_delete,
            "total": self.total,
            "max_delete_fraction": self.max_delete_fraction,
            "message": self.describe(),
        }


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
    #: planned for deletion, then spared by the delete's re-check: changed since the plan
    changed: int = 0
    changed_samples: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    #: tables the guard would have refused, had the sweep not been forced
    forced_past: list[Refusal] = field(default_factory=list)
    #: table -> record count before the sweep, for the tables with something to delete
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def total_deleted(self) -> int:
        return sum(self.deleted.values())

    def count_deleted(self, key: Key, record_id: str) -> None:
        self.deleted[key] = self.deleted.get(key, 0) + 1
        samples = self.samples.setdefault(key, [])
        if len(samples) < SAMPLES:
            samples.append(record_id)

    def count_held(self, record_id: str) -> None:
        self.held += 1
        if len(self.held_samples) < SAMPLES:
            self.held_samples.append(record_id)

    def count_changed(self, record_id: str) -> None:
        self.changed += 1
        if len(self.changed_samples) < SAMPLES:
            self.changed_samples.append(record_id)

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
            "changed": {"count": self.changed, "sample_ids": list(self.changed_samples)},
            "refused": [r.to_json() for r in self.refused],
            "forced_past_guard": [r.to_json() for r in self.forced_past],
            "totals": dict(self.totals),
        }


#: how far ahead of the real clock a real (not dry) sweep's `now` may be: clock skew, no more
MAX_FUTURE_NOW = timedelta(minutes=5)


def sweep_clock(requested: datetime | None, dry_run: bool, real: datetime) -> datetime:
    """The `now` a sweep runs at: `requested` (e.g. --now), else the real clock.

    A real sweep at a future `now` would delete memory that has not expired yet, and the
    delete's re-check uses the same clock, so it is refused (UsageError) unless a dry run;
    a past `now` deletes less and is allowed."""
    if requested is None:
        return real
    if not dry_run and requested > real + MAX_FUTURE_NOW:
        raise UsageError(
            f"now={requested.isoformat()} is in the future: a sweep at that time would delete "
            "memory that has not expired yet. Use it with --dry-run to preview, or leave now "
            "empty to sweep at the current time"
        )
    return requested


def scope_clauses(paths: Any) -> list[list[str]] | None:
    """A record's scope clauses from `scope.paths` as the engine returns it: a list of path
    lists for an array of scope_sets links (the reference schema), one flat list of paths for
    a single link; NONE or [] is no scope. None when it cannot be read (paths written inline,
    a link to a missing scope_sets record, another shape): such a record is never expired by
    TTL, rather than by the default TTL its real scope's rule may lengthen."""
    if paths is None:
        return []
    if not isinstance(paths, list):
        return None
    if all(isinstance(p, str) for p in paths):
        return [paths] if paths else []
    if all(isinstance(c, list) and all(isinstance(p, str) for p in c) for c in paths):
        return paths
    return None


#: Below every datetime value, above every value of another type that sorts before datetimes
#: (NULL, booleans, numbers, strings, durations).
EARLIEST_DATETIME = "d'0001-01-01T00:00:00Z'"


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


def _pages(conn: SurrealConnection, base: str, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """`base` is `SELECT <string> id AS id, ... FROM t WHERE <cond>`; yields pages in id order.

    Each page is `... AND id > <last id> ORDER BY rid LIMIT n` with `rid` the raw record id.
    The ORDER BY is required: when an index serves `<cond>` (valid_until, or
    memory_category + created_at) the engine returns rows in index order, not id order, and
    `id > last` without it would skip records. It sorts by the record id itself (EXPLAIN:
    `SortTopKByKey [sort_keys: id ASC]`), not by the `<string>` text, whose order differs
    (`t:10` < `t:9`). Each page thus reads the remaining matches: large pages keep that cheap.
    """
    base = base.replace("SELECT <string> id AS id", "SELECT id AS rid, <string> id AS id", 1)
    last: str | None = None
    while True:
        query = base + (f" AND id > {last}" if last is not None else "")
        rows = conn.run_one(f"{query} ORDER BY rid LIMIT {page_size}") or []
        if not rows:
            return
        yield rows
        if len(rows) < page_size:
            return
        last = rows[-1]["id"]


def _count(conn: SurrealConnection, table: str) -> int:
    rows = conn.run_one(f"SELECT count() FROM {surreal_identifier(table)} GROUP ALL") or []
    return int(rows[0]["count"]) if rows else 0


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Plan:
    """What one table would lose: id -> key, in discovery order, and per key the condition
    that made those records expire (re-checked when deleting)."""

    def __init__(self, table: SweepTable) -> None:
        self.table = table
        self.doomed: dict[str, Key] = {}
        self.conditions: dict[Key, str] = {}
        #: id -> the engine's text of its scope paths when planned (records expired by TTL:
        #: the policy, and so the TTL, follows the scope)
        self.scopes: dict[str, str] = {}

    def add(self, record_id: str, key: Key, condition: str, scope: str | None = None) -> None:
        if record_id not in self.doomed:
            self.doomed[record_id] = key
            self.conditions.setdefault(key, condition)
            if scope is not None:
                self.scopes[record_id] = scope

    def by_key(self) -> dict[Key, list[str]]:
        groups: dict[Key, list[str]] = {}
        for record_id, key in self.doomed.items():
            groups.setdefault(key, []).append(record_id)
        return groups


class _Sweep:
    """One database's sweep: the names, the clock and the limits, shared by its steps."""

    def __init__(
        self,
        conn: SurrealConnection,
        policies: PolicySet,
        now: datetime,
        cutoff: datetime,
        batch_size: int,
        page_size: int,
        tables: SweepTablesConfig,
        fields: SweepFieldsConfig,
        existing: dict[str, str],
    ) -> None:
        self.conn = conn
        self.policies = policies
        self.now = now
        self.cutoff = cutoff
        self.batch_size = batch_size
        self.page_size = page_size
        self.tables = tables
        #: table name -> its DEFINE TABLE statement
        self.existing = existing
        self.fields = fields
        self._defined: dict[str, set[str]] = {}
        q = surreal_identifier
        self.valid_until = q(fields.valid_until)
        self.created_at = q(fields.created_at)
        self.category = q(fields.memory_category)
        self.scope_paths = f"{q(fields.scope)}.{q(fields.scope_paths)}"
        self.attribute_entity = q(fields.attribute_entity)

    # planning -----------------------------------------------------------------------------

    def expired_by_valid_until(self, plan: _Plan) -> None:
        table = plan.table
        if not self.may_have(table, self.fields.valid_until):
            return  # e.g. `instruction`: no valid_until, nothing to read
        category_expr = self.category if table.category is None else "NONE"
        # only datetimes: NULL, strings, numbers and durations sort before every datetime, so
        # `!= NONE AND < cutoff` took them all for expired; a range from the earliest datetime
        # is still one index range
        condition = (
            f"{self.valid_until} >= {EARLIEST_DATETIME} "
            f"AND {self.valid_until} < {datetime_literal(self.cutoff)}"
        )
        base = (
            f"SELECT <string> id AS id, {category_expr} AS category "
            f"FROM {surreal_identifier(table.name)} WHERE {condition}"
        )
        for page in _pages(self.conn, base, self.page_size):
            for row in page:
                category = table.category or row.get("category")
                if not isinstance(category, str):
                    category = "unknown"
                key = (table.name, category, "valid_until", NO_POLICY)
                plan.add(row["id"], key, condition)

    def may_have(self, table: SweepTable, field_name: str) -> bool:
        """Whether records of `table` can hold `field_name`: a SCHEMAFULL table holds only the
        fields it defines, any other table anything."""
        if "SCHEMAFULL" not in self.existing.get(table.name, "").upper():
            return True
        if table.name not in self._defined:
            info = self.conn.run_one(f"INFO FOR TABLE {surreal_identifier(table.name)}") or {}
            self._defined[table.name] = set((info.get("fields") or {}).keys())
        defined = self._defined[table.name]
        return field_name in defined

    def expired_by_ttl(self, plan: _Plan) -> None:
        table = plan.table
        now_lit = datetime_literal(self.now)
        # never touch a record that is still valid (valid_until after now), nor one whose
        # valid_until is not a datetime at all (it cannot be told whether it still is)
        vu = self.valid_until
        still_open = (
            f"({vu} = NONE OR {vu} = NULL OR ({vu} >= {EARLIEST_DATETIME} AND {vu} <= {now_lit}))"
        )
        for category in (table.category,) if table.category else MEMORY_CATEGORIES:
            shortest = min_finite_ttl(self.policies, category)
            if shortest is None:
                continue  # indefinite everywhere: never expires by age
            of_category = [] if table.category else [f"{self.category} = '{category}'"]
            where = [
                *of_category,
                f"{self.created_at} < {datetime_literal(self.now - shortest)}",
                still_open,
            ]
            base = (
                f"SELECT <string> id AS id, {self.created_at} AS created_at, "
                f"{self.scope_paths} AS clauses, <string> {self.scope_paths} AS scope_text "
                f"FROM {surreal_identifier(table.name)} WHERE " + " AND ".join(where)
            )
            for page in _pages(self.conn, base, self.page_size):
                for row in page:
                    clauses = scope_clauses(row.get("clauses"))
                    if clauses is None:
                        continue  # a scope it cannot read: no TTL is known to apply
                    resolution = self.policies.resolve(clauses, category)
                    created = row.get("created_at")
                    if resolution.ttl is None or not isinstance(created, datetime):
                        continue
                    if created < self.now - resolution.ttl:
                        key = (table.name, category, "ttl", _policy_name(resolution))
                        # the re-check: still of that category, old enough, still open
                        condition = " AND ".join(
                            [
                                *of_category,
                                f"{self.created_at} < "
                                f"{datetime_literal(self.now - resolution.ttl)}",
                                still_open,
                            ]
                        )
                        plan.add(row["id"], key, condition, scope=row["scope_text"])

    def surviving_referrers(self, entity_ids: list[str], doomed: set[str]) -> set[str]:
        """The entities among `entity_ids` that an attribute or relation surviving the sweep
        refers to. One attribute read per batch of entities (`entity IN [...]` is a table
        scan in SurrealDB 3: not even an index on the field serves it)."""
        referred: set[str] = set()
        attribute = surreal_identifier(self.tables.attribute)
        relation = surreal_identifier(self.tables.relation)
        for chunk in _chunks(entity_ids, self.page_size):
            literal = "[" + ", ".join(chunk) + "]"
            if self.tables.attribute in self.existing:
                rows = self.conn.run_one(
                    f"SELECT VALUE [<string> id, <string> {self.attribute_entity}] "
                    f"FROM {attribute} WHERE {self.attribute_entity} IN {literal}"
                )
                referred.update(entity for attr, entity in rows or [] if attr not in doomed)
            if self.tables.relation in self.existing:
                rows = self.conn.run_one(
                    f"SELECT <string> id AS id, (<->{relation}).map(|$r| <string> $r) AS edges "
                    f"FROM {literal}"
                )
                for row in rows or []:
                    if any(edge not in doomed for edge in row.get("edges") or []):
                        referred.add(row["id"])
        return referred

    # deleting -----------------------------------------------------------------------------

    def delete(self, plan: _Plan, report: SweepReport) -> None:
        for key, ids in plan.by_key().items():
            condition = plan.conditions[key]
            for chunk in _chunks(ids, self.batch_size):
                scopes = {i: plan.scopes[i] for i in chunk if i in plan.scopes}
                gone = set(self._delete_batch(plan.table, chunk, condition, scopes))
                for record_id in chunk:
                    if record_id in gone:
                        report.count_deleted(key, record_id)
                    elif plan.table.is_entity:
                        report.count_held(record_id)
                    else:
                        report.count_changed(record_id)

    def _delete_batch(
        self, table: SweepTable, ids: Sequence[str], condition: str, scopes: dict[str, str]
    ) -> list[str]:
        """Delete those of `ids` that still meet `condition` and, for those in `scopes`, whose
        scope paths are still the planned ones (entities: and that nothing refers to), in one
        transaction; the ids actually deleted."""
        checks = [condition]
        if scopes:  # a record moved to another scope may fall under a longer TTL
            checks.append(f"<string> {self.scope_paths} = $scopes[<string> id]")
        lets = [f"LET $ids = [{', '.join(ids)}];"]
        if table.is_entity:
            if self.tables.attribute in self.existing:
                lets.append(
                    f"LET $referred = (SELECT VALUE {self.attribute_entity} "
                    f"FROM {surreal_identifier(self.tables.attribute)} "
                    f"WHERE {self.attribute_entity} IN $ids);"
                )
                checks.append("id NOTINSIDE $referred")
            if self.tables.relation in self.existing:
                checks.append(f"count(<->{surreal_identifier(self.tables.relation)}) = 0")
        results = self.conn.run(
            "BEGIN; "
            + " ".join(lets)
            + f" DELETE $ids WHERE {' AND '.join(checks)} RETURN VALUE <string> $before.id;"
            + " COMMIT;",
            {"scopes": scopes} if scopes else None,
        )
        return list(results[-2] or [])


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
    guard_allowance: int = GUARD_ALLOWANCE,
    valid_until_grace: timedelta = timedelta(0),
    force: bool = False,
    context: str | None = None,
    tables: SweepTablesConfig | None = None,
    fields: SweepFieldsConfig | None = None,
    page_size: int | None = None,
) -> SweepReport:
    """Sweep one Context database; see the module docstring. The database must exist.

    `batch_size` records are deleted per transaction; candidates are read `page_size` at a
    time (default: the larger of `batch_size` and MIN_PAGE_SIZE)."""
    if batch_size < 1 or (page_size is not None and page_size < 1):
        raise ValueError("batch_size and page_size must be at least 1")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    names = tables or SweepTablesConfig()
    report = SweepReport(
        namespace=ns, database=db, dry_run=dry_run, now=now, context=context, forced=force
    )
    conn.use_existing(ns, db)  # USE would create a missing database
    existing = {
        name: str(definition)
        for name, definition in ((conn.run_one("INFO FOR DB") or {}).get("tables") or {}).items()
    }
    sweep = _Sweep(
        conn,
        policies,
        now,
        now - valid_until_grace,
        batch_size,
        page_size or max(batch_size, MIN_PAGE_SIZE),
        names,
        fields or SweepFieldsConfig(),
        existing,
    )

    plans: list[_Plan] = []
    doomed_edges: set[str] = set()  # attribute and relation ids that will go
    for table in (t for t in sweep_tables(names) if t.name in existing):
        plan = _Plan(table)
        sweep.expired_by_valid_until(plan)
        sweep.expired_by_ttl(plan)
        if table.is_entity and plan.doomed:
            for entity_id in sweep.surviving_referrers(list(plan.doomed), doomed_edges):
                del plan.doomed[entity_id]
                report.count_held(entity_id)
        if plan.doomed:  # counted only then: a no-op sweep reads nothing but its index
            total = report.totals[table.name] = _count(conn, table.name)
            if len(plan.doomed) > max(max_delete_fraction * total, guard_allowance):
                over = Refusal(table.name, len(plan.doomed), total, max_delete_fraction)
                if force:
                    report.forced_past.append(over)
                else:
                    report.refused.append(over)
                    plan.doomed.clear()
        if not table.is_entity:
            doomed_edges.update(plan.doomed)
        plans.append(plan)

    for plan in plans:  # already ordered: attributes and relations before entities
        if dry_run:
            for record_id, key in plan.doomed.items():
                report.count_deleted(key, record_id)
        else:
            sweep.delete(plan, report)
    return report
