"""Which databases make up a Spectron instance (design section 2).

The control plane `spectron/metadata`, the job queue `spectron/_jobqueue` when present, and
every Context database named in the control plane's `context` table. A Context whose
database does not exist is reported, never silently skipped. Two Contexts registered on one
database (or a Context on the control plane's) give that database once, naming both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from spectron_backup.config import SourceConfig
from spectron_backup.errors import UsageError
from spectron_backup.surreal import SurrealConnection

Role = Literal["control", "jobqueue", "context"]


@dataclass(frozen=True)
class DatabaseRef:
    ns: str
    db: str
    role: Role
    context: str | None = None
    #: other Contexts registered on this same database: it is backed up once, for all of them
    shared_with: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.ns}/{self.db}"


@dataclass
class Discovery:
    databases: list[DatabaseRef] = field(default_factory=list)
    #: Contexts registered in the control plane whose database does not exist
    missing: list[DatabaseRef] = field(default_factory=list)
    #: Context ids left out by `source.contexts` include/exclude
    excluded: list[str] = field(default_factory=list)
    #: what `source.contexts` names that is no registered Context (a typo, a deleted Context)
    unknown: list[str] = field(default_factory=list)


def discover(conn: SurrealConnection, source: SourceConfig) -> Discovery:
    control_ns, control_db = source.control_namespace, source.control_database
    existing = {(ns, db) for ns in conn.namespaces() for db in conn.databases(ns)}
    if (control_ns, control_db) not in existing:
        raise UsageError(
            f"{conn.display_url} has no Spectron control plane: database {control_ns}/{control_db} "
            "does not exist (check source.url and source.control_namespace)"
        )
    found = Discovery(databases=[DatabaseRef(control_ns, control_db, "control")])
    if (control_ns, source.jobqueue_database) in existing:
        found.databases.append(DatabaseRef(control_ns, source.jobqueue_database, "jobqueue"))
    conn.use(control_ns, control_db)
    tables = (conn.run_one("INFO FOR DB") or {}).get("tables", {})
    rows = (
        conn.run_one("SELECT VALUE [<string> record::id(id), namespace, database] FROM context")
        or []
        if "context" in tables
        else []
    )
    _check_context_filter(source, [str(r[0]) for r in rows], found)
    placed = {(r.ns, r.db): i for i, r in enumerate(found.databases)}
    for context_id, ns, db in sorted(rows, key=lambda r: r[0]):
        if not source.contexts.selects(context_id):
            found.excluded.append(context_id)
            continue
        ref = DatabaseRef(str(ns), str(db), "context", context_id)
        if (ref.ns, ref.db) in placed:  # one database, one object: two would share its key
            index = placed[(ref.ns, ref.db)]
            first = found.databases[index]
            found.databases[index] = replace(first, shared_with=(*first.shared_with, context_id))
        elif (ref.ns, ref.db) in existing:
            placed[(ref.ns, ref.db)] = len(found.databases)
            found.databases.append(ref)
        else:
            found.missing.append(ref)
    return found


def require_selected(source: SourceConfig, context_id: str) -> None:
    """UsageError when `source.contexts` leaves `context_id` out (told from the configuration
    alone, before connecting)."""
    if not source.contexts.selects(context_id):
        raise UsageError(
            f"Context {context_id!r} is left out by source.contexts (include/exclude) in the "
            "configuration: it is neither backed up nor swept"
        )


def _check_context_filter(source: SourceConfig, registered: list[str], found: Discovery) -> None:
    """Ids in `source.contexts` that name no registered Context are warnings (`unknown`); an
    include list that selects none at all is a UsageError: the backup would hold no Context
    while the operator believes some are in it."""
    known = set(registered)
    for key in ("include", "exclude"):
        for context_id in getattr(source.contexts, key):
            if context_id not in known:
                found.unknown.append(
                    f"source.contexts.{key} names Context {context_id!r}, which is not "
                    "registered in the control plane"
                )
    include = source.contexts.include
    if include and not known.intersection(include):
        shown = ", ".join(sorted(known)[:10]) + (", ..." if len(known) > 10 else "")
        raise UsageError(
            f"source.contexts.include ({', '.join(include)}) names no registered Context: "
            f"check the ids (registered: {shown or 'none'})"
        )
