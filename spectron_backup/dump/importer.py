"""Import a SurrealQL dump (ours, or `surreal export`'s, 2.x or 3.x) into one database.

Statements are split by a real tokenizer and sent in batches, each batch one query that starts
with `OPTION IMPORT;` (the option is scoped to the query). Every statement still commits on its
own, exactly as `surreal import` does, so a failure is reported per statement with its line
number and the engine's message; a batch the engine refuses to parse is replayed statement by
statement so that the bad one is named and the good ones still run.

SurrealDB's exporter writes tables in name order, so an ENFORCED relation table that sorts
before its target (`knows` before `person`) comes before the records its edges point at, and
`surreal import` silently loses those edges. Here an `INSERT RELATION` that fails because an
endpoint does not exist yet is set aside (on disk, not in memory) and replayed at the end.

Batches of nothing but `INSERT [...]` statements are sent up to `workers` at a time (the
engine inserts on one core; see `SurrealConnection.submitter`); any other batch waits
for those in flight and runs alone, so every definition is in place before the data after it
and after the data before it. Their results are read in order. A statement the engine failed
for a write conflict with a concurrent one ("This transaction can be retried") is sent again
once nothing else is in flight.

`surreal export` also writes the records of view tables (`DEFINE TABLE v ... AS SELECT`), but
defining a view over restored data already fills it, so those INSERTs fail with "already
exists": such a failure, for a view defined earlier in the dump, is expected and not reported.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

from spectron_backup.dump.splitter import SplitError, Statement, iter_statements_from_file
from spectron_backup.errors import UsageError
from spectron_backup.surreal import QueryRejected, Submit, SurrealConnection

#: A batch is sent when it holds this many statements or this many characters.
BATCH_STATEMENTS = 64
BATCH_CHARS = 4 << 20

_INSERT_WITHOUT_RETURN = re.compile(r"^INSERT\s+(?:RELATION\s+)?(?:IGNORE\s+)?\[", re.IGNORECASE)
_OPTION = re.compile(r"^OPTION\s+IMPORT\s*$", re.IGNORECASE)
_INSERT_RELATION = re.compile(r"^INSERT\s+RELATION\b", re.IGNORECASE)
#: `DEFINE TABLE name ... AS SELECT`: group 1 is the name as written (no quotes before AS SELECT)
_DEFINE_VIEW = re.compile(
    r"^DEFINE\s+TABLE\s+(?:OVERWRITE\s+|IF\s+NOT\s+EXISTS\s+)?(`(?:[^`\\]|\\.)*`|⟨[^⟩]*⟩|[^\s`⟨]+)"
    r"\s[^'\"`]*?\bAS\s+SELECT\b",
    re.IGNORECASE | re.DOTALL,
)
_ALREADY_EXISTS = re.compile(r"^Database record `(.*)` already exists$", re.DOTALL)
#: SurrealDB's (2.x and 3.x) marker of a transaction that lost a write conflict
_RETRYABLE = "This transaction can be retried"


def default_workers() -> int:
    """INSERT batches in flight at once: one per core this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@dataclass
class StatementFailure:
    line: int
    statement: str  # the statement's first characters, for the operator to recognise it
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "statement": self.statement, "message": self.message}

    def __str__(self) -> str:
        return f"line {self.line}: {self.message} (in: {self.statement})"


@dataclass
class ImportSummary:
    namespace: str
    database: str
    statements: int = 0
    failures: list[StatementFailure] = field(default_factory=list)
    seconds: float = 0.0
    bytes_read: int = 0
    #: INSERT RELATION statements replayed after the rest because an endpoint was missing
    deferred: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "ns": self.namespace,
            "db": self.database,
            "ok": self.ok,
            "statements": self.statements,
            "failed": len(self.failures),
            "failures": [f.to_json() for f in self.failures],
            "deferred_relations": self.deferred,
            "seconds": round(self.seconds, 3),
        }


#: Called after each batch with (statements executed so far, characters read so far).
ImportProgress = Callable[[int, int], None]


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text[: limit * 2].split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _prepare(statement: str) -> str:
    """Ask INSERTs not to return what they inserted: decoding it back costs more than the insert."""
    if _INSERT_WITHOUT_RETURN.match(statement) and statement.endswith("]"):
        return statement + " RETURN NONE"
    return statement


def database_is_empty(conn: SurrealConnection) -> tuple[bool, list[str]]:
    info = conn.run_one("INFO FOR DB") or {}
    defined = [
        f"{key} {name}"
        for key, items in sorted(info.items())
        if isinstance(items, dict)
        for name in sorted(items)
    ]
    return (not defined, defined)


class Importer:
    def __init__(
        self,
        conn: SurrealConnection,
        namespace: str,
        database: str,
        *,
        force: bool = False,
        batch_statements: int = BATCH_STATEMENTS,
        batch_chars: int = BATCH_CHARS,
        workers: int | None = None,
        progress: ImportProgress | None = None,
    ) -> None:
        self._deferred: IO[str] | None = None
        self._submit: Submit = conn.submit_now
        #: INSERT batches sent and not yet read back, oldest first
        self._in_flight: deque[tuple[list[Statement], Future[list[dict[str, Any]]]]] = deque()
        #: statements that lost a write conflict, sent again when nothing is in flight
        self._conflicted: list[Statement] = []
        self._views: set[str] = set()  # view tables defined so far, as the dump writes their names
        self.conn = conn
        self.namespace = namespace
        self.database = database
        self.force = force
        self.batch_statements = batch_statements
        self.batch_chars = batch_chars
        self.workers = default_workers() if workers is None else workers
        self.progress = progress

    def prepare_target(self) -> None:
        """Select the target database (creating it) and refuse a non-empty one unless forced."""
        self.conn.use(self.namespace, self.database)
        empty, defined = database_is_empty(self.conn)
        if not empty and not self.force:
            shown = ", ".join(defined[:5]) + (" ..." if len(defined) > 5 else "")
            raise UsageError(
                f"target database {self.namespace}/{self.database} on {self.conn.display_url} is not "
                f"empty ({len(defined)} definitions: {shown}); import into an empty database, or "
                "pass --force to import into it anyway"
            )

    def import_statements(self, statements: Iterable[Statement]) -> ImportSummary:
        summary = ImportSummary(self.namespace, self.database)
        started = time.perf_counter()
        spool = self._deferred = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in finally
        try:
            self._submit = self.conn.submitter(self.workers)
            self._import(statements, summary)
        except SplitError as exc:
            raise UsageError(
                f"cannot read the dump: {exc}; the file is truncated or not a SurrealQL dump"
            ) from None
        finally:
            self._submit = self.conn.submit_now
            self._in_flight.clear()
            spool.close()
            self._deferred = None
        summary.seconds = time.perf_counter() - started
        return summary

    def _import(self, statements: Iterable[Statement], summary: ImportSummary) -> None:
        batch: list[Statement] = []
        size = 0
        try:
            for statement in statements:
                summary.bytes_read += len(statement.text)
                if _OPTION.match(statement.text):
                    continue  # every batch carries its own OPTION IMPORT
                if view := _DEFINE_VIEW.match(statement.text):
                    self._views.add(view.group(1))
                batch.append(statement)
                size += len(statement.text)
                if len(batch) >= self.batch_statements or size >= self.batch_chars:
                    self._send(batch, summary)
                    batch, size = [], 0
            if batch:
                self._send(batch, summary)
            self._drain(summary)
            self._replay_deferred(summary)
        finally:
            # a failure mid-way: nothing of ours is left running in the engine
            for _batch, future in self._in_flight:
                future.exception()

    def import_file(self, fp: TextIO) -> ImportSummary:
        return self.import_statements(iter_statements_from_file(fp))

    def _send(self, batch: list[Statement], summary: ImportSummary) -> None:
        concurrent = all(_INSERT_WITHOUT_RETURN.match(s.text) for s in batch)
        if not concurrent:
            self._drain(summary)
        sql = "OPTION IMPORT;\n" + ";\n".join(_prepare(s.text) for s in batch) + ";"
        self._in_flight.append((batch, self._submit(sql)))
        if not concurrent:
            self._drain(summary)
        while len(self._in_flight) >= self.workers:
            self._read_oldest(summary)

    def _drain(self, summary: ImportSummary) -> None:
        """Read every batch in flight, then send again what lost a write conflict."""
        while self._in_flight:
            self._read_oldest(summary)
        conflicted, self._conflicted = self._conflicted, []
        for statement in conflicted:
            self._send_one(statement, summary)

    def _read_oldest(self, summary: ImportSummary) -> None:
        batch, future = self._in_flight.popleft()
        try:
            results = future.result()
        except QueryRejected:
            # One statement does not parse: nothing in the batch ran. Replay one by one.
            for statement in batch:
                self._send_one(statement, summary)
            return
        # The first result is OPTION IMPORT's own.
        for statement, result in zip(batch, results[1:], strict=False):
            if result.get("status") == "OK":
                summary.statements += 1
            elif _RETRYABLE in str(result.get("result")):
                self._conflicted.append(statement)
            else:
                summary.statements += 1
                self._failed(statement, str(result.get("result")), summary)
        if self.progress:
            self.progress(summary.statements, summary.bytes_read)

    def _send_one(self, statement: Statement, summary: ImportSummary) -> None:
        summary.statements += 1
        try:
            results = self._submit("OPTION IMPORT;\n" + _prepare(statement.text) + ";").result()
        except QueryRejected as exc:
            summary.failures.append(
                StatementFailure(statement.line, _excerpt(statement.text), _first_line(exc.message))
            )
            return
        for result in results[1:]:
            if result.get("status") != "OK":
                self._failed(statement, str(result.get("result")), summary)

    def _failed(self, statement: Statement, message: str, summary: ImportSummary) -> None:
        if self._is_view_data(statement, message):
            return  # the view was filled when it was defined
        if (
            self._deferred is not None
            and _INSERT_RELATION.match(statement.text)
            and "does not exist" in message
        ):
            self._deferred.write(json.dumps([statement.line, statement.text]) + "\n")
            summary.deferred += 1
            summary.statements -= 1  # counted again when replayed
            return
        summary.failures.append(StatementFailure(statement.line, _excerpt(statement.text), message))

    def _is_view_data(self, statement: Statement, message: str) -> bool:
        existing = _ALREADY_EXISTS.match(message)
        return bool(
            existing
            and _INSERT_WITHOUT_RETURN.match(statement.text)
            and not _INSERT_RELATION.match(statement.text)
            and any(existing.group(1).startswith(view + ":") for view in self._views)
        )

    def _replay_deferred(self, summary: ImportSummary) -> None:
        """Replay set-aside edges now that every record is in; failures now are final."""
        spool = self._deferred
        if spool is None or not summary.deferred:
            return
        self._deferred = None  # a failure from here on is final
        spool.seek(0)
        for entry in spool:
            line, text = json.loads(entry)
            self._send_one(Statement(text=text, line=line), summary)


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message


def import_dump(
    conn: SurrealConnection,
    namespace: str,
    database: str,
    fp: TextIO,
    *,
    force: bool = False,
    progress: ImportProgress | None = None,
) -> ImportSummary:
    importer = Importer(conn, namespace, database, force=force, progress=progress)
    importer.prepare_target()
    return importer.import_file(fp)
