"""Validation of a restored database (design section 6): what a restore drill checks.

`validate_restored` returns one `CheckResult` per check, passed or not:

- against the manifest: every table's record count and content hash, the set of tables, and
  the schema fingerprint (INFO FOR DB and every INFO FOR TABLE, see `dump.schema`);
- Spectron expectations, run with Great Expectations on pandas data frames, each applied only
  where its table and fields exist in the restored schema: ids unique; `memory_category` in its
  set; `valid_until >= valid_from` where both are set; `turn.role` in its set and
  `(session, seq)` unique; embeddings as long as their HNSW (or MTREE) index's DIMENSION and
  free of NaN; `document.content_hash` shaped `blake3:<64 hex>`; key hashes shaped like Argon2;
  links that resolve (`turn.session`, `knowledge_chunk.document`, `attribute.entity`,
  `memory_chunk.session`, every relation table's `in` and `out`);
- cross-store, when a document store is given: every `document.storage_key` exists in it.

Cost and memory. Each table is read once, in id-range pages (the `WHERE id > <last id> LIMIT n`
scan of `dump.pages`): a page query returns each record's `<string>` text, hashed at once into
the table's count and content hash (exactly what `dump.pages.table_digest` computes, without a
second pass over the table) and then dropped, together with the scalar columns the
expectations need, computed by the engine: `array::len(embedding)` and a NaN flag instead of
the vectors, a boolean for "this link resolves", `<string>` texts of the checked fields. Those
scalar rows are gathered into data frames of at most `FRAME_ROWS` rows, and each frame is
validated with the table's expectation suite (one ephemeral GX context per call, one suite per
table). Uniqueness across frames is checked with 64-bit hashes of the key columns; only if two
frames share a key is the table read again for the rows concerned, so that GX names them.
Since the count and hash come from the same pass, a drill that calls this needs no separate
`restore.compare_with_manifest` (restore_database(..., verify=False)): that would read every
record a second time.

SurrealQL forms (verified on SurrealDB 3.2.4, embedded):

- NaN: the engine orders numbers totally, so `NaN == NaN` is true and `$v != $v` is always
  false; a NaN is found with `embedding CONTAINSANY [NaN, -NaN]` (0.0/0.0 is the negative NaN,
  which `CONTAINS NaN` alone misses). Closures (`array::any(embedding, |$v| ...)`) cost 10-20 s
  per 20,000 vectors of 384 floats and are not used.
- a link resolves: `type::is_record(f) AND f.id != NONE` (the target's id is NONE when the
  record does not exist; `record::exists(f)` says the same but raises on NONE and costs twice
  as much per record).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spectron_backup.checks import CheckResult
from spectron_backup.content_hash import TableHasher
from spectron_backup.dump.pages import iter_pages
from spectron_backup.dump.schema import fingerprint
from spectron_backup.errors import OperationFailed, UsageError
from spectron_backup.keyed_hashes import PLAIN, HashKey
from spectron_backup.manifest import DatabaseEntry
from spectron_backup.stores.base import InvalidKey, Store, StoreError
from spectron_backup.surreal import Submit, SurrealConnection, surreal_identifier

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: rows of scalar columns per data frame handed to Great Expectations
FRAME_ROWS = 50_000
#: records per page of the first query of a table (later pages are sized by record text)
MIN_PAGE = 1000
#: above this many keys in a frame, the document store is listed instead of asked per key
LIST_THRESHOLD = 1000


@dataclass(frozen=True)
class SpectronNames:
    """Table and field names the Spectron expectations look for (design section 2)."""

    memory_tables: tuple[str, ...] = ("entity", "attribute", "relates_to")
    memory_category: str = "memory_category"
    memory_categories: tuple[str, ...] = ("identity", "knowledge", "context")
    validity_tables: tuple[str, ...] = ("attribute", "relates_to")
    valid_from: str = "valid_from"
    valid_until: str = "valid_until"
    turn_table: str = "turn"
    turn_role: str = "role"
    turn_roles: tuple[str, ...] = ("user", "assistant", "system", "tool")
    turn_session: str = "session"
    turn_seq: str = "seq"
    document_table: str = "document"
    content_hash: str = "content_hash"
    content_hash_regex: str = r"^blake3:[0-9a-f]{64}$"
    storage_key: str = "storage_key"
    #: (table, field) of hashed keys: never a plain key
    key_hashes: tuple[tuple[str, str], ...] = (("api_key", "hash"), ("context_api_key", "hash"))
    key_hash_regex: str = r"^\$argon2(?:id|i|d)\$"
    #: (table, field) links that must resolve; relation tables' in/out are added to these
    links: tuple[tuple[str, str], ...] = (
        ("turn", "session"),
        ("knowledge_chunk", "document"),
        ("attribute", "entity"),
        ("memory_chunk", "session"),
    )


DEFAULT_NAMES = SpectronNames()

_VECTOR_INDEX = re.compile(r"\bFIELDS\s+(.+?)\s+(HNSW|MTREE)\b.*?\bDIMENSION\s+(\d+)", re.S)


# -- what is checked -------------------------------------------------------------------------


@dataclass
class _Tally:
    """One expectation's results, summed over the frames of a table."""

    elements: int = 0
    unexpected: int = 0
    ids: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class _Expectation:
    check: str  # CheckResult.check
    what: str  # the human statement of what is expected
    columns: dict[str, str]  # frame column -> SurrealQL expression (computed engine-side)
    build: Callable[[Any], Any]  # great_expectations.expectations module -> an Expectation
    #: columns that must be unique together (checked across frames as well)
    unique: tuple[str, ...] = ()
    #: columns whose found values the detail may show (none for secrets)
    shown: tuple[str, ...] = ()
    #: SurrealQL expression (a string) that explains a failing record, read for a few of them
    explain: str | None = None
    secret: bool = False
    gx_name: str = ""
    tally: _Tally = field(default_factory=_Tally)
    #: 64-bit hashes of the unique columns, one array per frame
    hashes: list[Any] = field(default_factory=list)


@dataclass
class _TablePlan:
    name: str
    expectations: list[_Expectation]
    #: compute `object_exists` in pandas from this frame column (the document store check)
    storage_key_column: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    hasher: TableHasher = field(default_factory=TableHasher)
    frames: int = 0
    scan_error: str | None = None
    validation: Any = None


def _field_ref(name: str) -> str:
    """A field name as a SurrealQL idiom."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else surreal_identifier(name)


def _column_name(text: str) -> str:
    return re.sub(r"\W+", "_", text).strip("_") or "field"


def _plan_table(
    table: str,
    define: str,
    info: dict[str, Any],
    names: SpectronNames,
    documents: Store | None,
) -> _TablePlan:
    """The expectations that apply to a table, from its INFO (fields and indexes)."""
    fields = set((info.get("fields") or {}).keys())
    is_relation = " TYPE RELATION" in f" {define}"
    expectations: list[_Expectation] = [
        _Expectation(
            "ids_unique",
            "record ids are unique",
            {},
            lambda gxe: gxe.ExpectColumnValuesToBeUnique(column="id"),
            unique=("id",),
            shown=("id",),
        )
    ]

    def has(*wanted: str) -> bool:
        return all(name in fields for name in wanted)

    if table in names.memory_tables and has(names.memory_category):
        column, ref = "memory_category", _field_ref(names.memory_category)
        allowed = list(names.memory_categories)
        expectations.append(
            _Expectation(
                "memory_category_in_set",
                f"{names.memory_category} in {{{', '.join(allowed)}}}",
                {column: f"<string> {ref}"},
                lambda gxe, c=column, s=allowed: gxe.ExpectColumnValuesToBeInSet(
                    column=c, value_set=s
                ),
                shown=(column,),
            )
        )
    if table in names.validity_tables and has(names.valid_from, names.valid_until):
        start, end = _field_ref(names.valid_from), _field_ref(names.valid_until)
        expectations.append(
            _Expectation(
                "valid_until_not_before_valid_from",
                f"{names.valid_until} >= {names.valid_from} where both are set",
                {
                    "validity_ok": f"(!type::is_datetime({start}) OR !type::is_datetime({end}) "
                    f"OR {end} >= {start})"
                },
                lambda gxe: gxe.ExpectColumnValuesToBeInSet(column="validity_ok", value_set=[True]),
                explain=f"string::concat('{names.valid_from} ', <string> {start}, "
                f"', {names.valid_until} ', <string> {end})",
            )
        )
    if table == names.turn_table and has(names.turn_role):
        roles = list(names.turn_roles)
        expectations.append(
            _Expectation(
                "role_in_set",
                f"{names.turn_role} in {{{', '.join(roles)}}}",
                {"role": f"<string> {_field_ref(names.turn_role)}"},
                lambda gxe, s=roles: gxe.ExpectColumnValuesToBeInSet(column="role", value_set=s),
                shown=("role",),
            )
        )
    if table == names.turn_table and has(names.turn_session, names.turn_seq):
        expectations.append(
            _Expectation(
                "session_seq_unique",
                f"({names.turn_session}, {names.turn_seq}) unique",
                {
                    "session": f"<string> {_field_ref(names.turn_session)}",
                    "seq": f"<string> {_field_ref(names.turn_seq)}",
                },
                lambda gxe: gxe.ExpectCompoundColumnsToBeUnique(column_list=["session", "seq"]),
                unique=("session", "seq"),
                shown=("session", "seq"),
            )
        )
    for index_name, index_define in sorted((info.get("indexes") or {}).items()):
        match = _VECTOR_INDEX.search(index_define)
        if not match or "," in match.group(1):
            continue
        ref, kind, dimension = match.group(1).strip(), match.group(2), int(match.group(3))
        base = _column_name(ref)
        dim_column, nan_column = f"{base}__length", f"{base}__nan"
        expectations.append(
            _Expectation(
                "embedding_dimension_matches_index",
                f"every {ref} that is set has the {kind} DIMENSION {dimension} of index "
                f"{index_name}",
                {
                    dim_column: f"(IF type::is_array({ref}) THEN array::len({ref}) "
                    f"ELSE IF {ref} = NONE OR {ref} = NULL THEN NONE ELSE -1 END)"
                },
                lambda gxe, c=dim_column, d=dimension: gxe.ExpectColumnValuesToBeInSet(
                    column=c, value_set=[d]
                ),
                shown=(dim_column,),
            )
        )
        expectations.append(
            _Expectation(
                "embedding_has_no_nan",
                f"no {ref} contains NaN",
                {nan_column: f"(type::is_array({ref}) AND {ref} CONTAINSANY [NaN, -NaN])"},
                lambda gxe, c=nan_column: gxe.ExpectColumnValuesToBeInSet(
                    column=c, value_set=[False]
                ),
            )
        )
    if table == names.document_table and has(names.content_hash):
        regex = names.content_hash_regex
        expectations.append(
            _Expectation(
                "content_hash_format",
                f"{names.content_hash} matches {regex}",
                {"content_hash": f"<string> {_field_ref(names.content_hash)}"},
                lambda gxe, r=regex: gxe.ExpectColumnValuesToMatchRegex(
                    column="content_hash", regex=r
                ),
                shown=("content_hash",),
            )
        )
    for key_table, key_field in names.key_hashes:
        if table == key_table and has(key_field):
            regex = names.key_hash_regex
            expectations.append(
                _Expectation(
                    "key_hash_is_argon2",
                    f"{key_field} is an Argon2 hash ({regex}), never a plain key",
                    {"key_hash": f"<string> {_field_ref(key_field)}"},
                    lambda gxe, r=regex: gxe.ExpectColumnValuesToMatchRegex(
                        column="key_hash", regex=r
                    ),
                    secret=True,
                )
            )
    links = [f for t, f in names.links if t == table and has(f)]
    if is_relation:
        links += [f for f in ("in", "out") if f not in links]
    for link in links:
        ref, column = _field_ref(link), f"{_column_name(link)}__resolves"
        expectations.append(
            _Expectation(
                "links_resolve",
                f"{table}.{link} links to a record that exists",
                {column: f"(type::is_record({ref}) AND {ref}.id != NONE)"},
                lambda gxe, c=column: gxe.ExpectColumnValuesToBeInSet(column=c, value_set=[True]),
                explain=f"string::concat('{link} = ', <string> {ref})",
            )
        )
    storage_key_column = None
    if documents is not None and table == names.document_table and has(names.storage_key):
        storage_key_column = "storage_key"
        expectations.append(
            _Expectation(
                "document_objects_exist",
                f"every {table}.{names.storage_key} exists in the document store {documents.url}",
                {"storage_key": f"<string> {_field_ref(names.storage_key)}"},
                lambda gxe: gxe.ExpectColumnValuesToBeInSet(
                    column="object_exists", value_set=[True]
                ),
                explain=f"string::concat('{names.storage_key} = ', <string> {_field_ref(names.storage_key)})",
            )
        )
    plan = _TablePlan(table, expectations, storage_key_column)
    for expectation in expectations:
        plan.columns.update(expectation.columns)
    return plan


# -- reading ---------------------------------------------------------------------------------


def _scan(
    conn: SurrealConnection,
    table: str,
    columns: list[str],
    *,
    with_text: bool,
    submit: Submit | None = None,
) -> Iterator[list[list[Any]]]:
    """Pages of `[text?, id, *columns]` rows of every record of a table (see `dump.pages`)."""
    head = ["<string> $this", "<string> id"] if with_text else ["<string> id"]
    return iter_pages(
        conn,
        table,
        [*head, *columns],
        id_column=1 if with_text else 0,
        text_column=0 if with_text else None,
        min_page=MIN_PAGE,
        submit=submit,
    )


def _objects_exist(store: Store, keys: list[str]) -> list[bool]:
    """Whether each key names an object of the store (listing once when there are many)."""
    listed: set[str] = set()
    if len(keys) > LIST_THRESHOLD:
        # The common prefix of all keys is that of the least and the greatest.
        first, last = min(keys), max(keys)
        common = next(
            (i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b),
            min(len(first), len(last)),
        )
        prefix = first[:common].rpartition("/")[0]
        if prefix:
            listed = {info.key for info in store.list(prefix + "/")}
    found = []
    for key in keys:
        if key in listed:
            found.append(True)
            continue
        try:
            found.append(store.head(key) is not None)
        except InvalidKey:
            found.append(False)
    return found


# -- Great Expectations ------------------------------------------------------------------


#: the thread `import_great_expectations_meanwhile` started, if any
_gx_import: threading.Thread | None = None


def _import_great_expectations() -> None:
    with suppress(Exception):  # a broken install is reported where it is used
        import great_expectations
        import great_expectations.expectations  # noqa: F401


def import_great_expectations_meanwhile() -> None:
    """Start importing Great Expectations on a thread of its own.

    The import takes ~2 s (scipy among what it loads; two thirds of the validation's own
    Python time in a drill of 104k records, py-spy). A drill starts it before it downloads and
    imports, which wait mostly on the store and the engine; the validation waits for it to
    finish before it imports the modules itself.
    """
    global _gx_import
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # here: setenv is not thread-safe
    if _gx_import is None:
        _gx_import = threading.Thread(
            target=_import_great_expectations, name="import-great-expectations", daemon=True
        )
        _gx_import.start()


class _Validator:
    """One ephemeral GX context for one call of `validate_restored`."""

    def __init__(self, sample: int) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        if _gx_import is not None:
            _gx_import.join()
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx, self.gxe = gx, gxe
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("restored")
        self.sample = sample
        self._names = 0

    def definition(self, label: str, expectations: list[_Expectation]) -> Any:
        """A validation definition: a data frame asset and a suite holding the expectations."""
        self._names += 1
        name = f"v{self._names}"
        asset = self.source.add_dataframe_asset(name=name)
        batch = asset.add_batch_definition_whole_dataframe(name)
        suite = self.context.suites.add(self.gx.ExpectationSuite(name=f"{name} {label}"))
        for number, expectation in enumerate(expectations):
            built = expectation.build(self.gxe)
            built.meta = {"n": number, "check": expectation.check}
            expectation.gx_name = built.expectation_type
            suite.add_expectation(built)
        return self.context.validation_definitions.add(
            self.gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )

    def run(self, definition: Any, frame: pd.DataFrame, *, secret: bool) -> list[tuple[int, Any]]:
        result = definition.run(
            batch_parameters={"dataframe": frame},
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": ["id"],
                "partial_unexpected_count": max(self.sample, 1),
                "return_unexpected_index_query": False,
                "exclude_unexpected_values": secret,
            },
        )
        return [(int(r.expectation_config.meta["n"]), r) for r in result.results]


def _exception_message(result: Any) -> str | None:
    info = result.exception_info or {}
    candidates = [info] if "raised_exception" in info else list(info.values())
    for item in candidates:
        if isinstance(item, dict) and item.get("raised_exception"):
            return str(item.get("exception_message") or "the expectation raised an error")
    return None


def _records(n: int) -> str:
    return f"{n} record" if n == 1 else f"{n} records"


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _add_result(expectation: _Expectation, result: Any, sample: int, *, replace: bool) -> None:
    tally = _Tally() if replace else expectation.tally
    if replace:
        tally.elements = expectation.tally.elements
        expectation.tally = tally
    error = _exception_message(result)
    if error:
        tally.errors.append(error)
        return
    found = result.result or {}
    if not replace:
        tally.elements += int(found.get("element_count") or 0)
    tally.unexpected += int(found.get("unexpected_count") or 0)
    for row in found.get("partial_unexpected_index_list") or []:
        if not isinstance(row, dict):
            continue
        # with exclude_unexpected_values, GX gives one row holding the list of all ids
        records = row.get("id")
        for record in records if isinstance(records, list) else [records]:
            if len(tally.ids) < sample and str(record) not in tally.ids:
                tally.ids.append(str(record))
        if expectation.secret or not expectation.shown:
            continue
        shown = [_show(row[c]) for c in expectation.shown if c in row and c != "id"]
        text = ", ".join(shown) if len(shown) != 1 else shown[0]
        if text and len(tally.values) < sample and text not in tally.values:
            tally.values.append(text)


# -- the run ---------------------------------------------------------------------------------


class _Run:
    def __init__(
        self,
        conn: SurrealConnection,
        entry: DatabaseEntry,
        documents: Store | None,
        sample: int,
        names: SpectronNames,
        hash_key: HashKey,
    ) -> None:
        self.conn = conn
        self.entry = entry
        self.hash_key = hash_key
        self.documents = documents
        self.sample = sample
        self.names = names
        self.where = f"{entry.ns}/{entry.db}"
        self.results: list[CheckResult] = []
        self._validator: _Validator | None = None
        #: two pages in flight while tables are read (see `dump.pages.iter_pages`)
        self.submit: Submit = conn.submitter(2)

    @property
    def validator(self) -> _Validator:
        if self._validator is None:
            self._validator = _Validator(self.sample)
        return self._validator

    def result(
        self, table: str | None, check: str, passed: bool, detail: str, ids: list[str] | None = None
    ) -> None:
        self.results.append(
            CheckResult(self.where, table, check, passed, detail, list(ids or [])[: self.sample])
        )

    def run(self, namespace: str, database: str) -> list[CheckResult]:
        conn, entry = self.conn, self.entry
        try:
            # asked first: selecting a database that does not exist would create it
            exists = conn.database_exists(namespace, database)
        except UsageError:  # a namespace-level user may not list namespaces: just look
            exists = True
        db_info: dict[str, Any] = {}
        infos: dict[str, dict[str, Any]] = {}
        if exists:
            conn.use(namespace, database)
            db_info = conn.run_one("INFO FOR DB") or {}
            infos = {
                name: conn.run_one(f"INFO FOR TABLE {surreal_identifier(name)}") or {}
                for name in sorted(db_info.get("tables") or {})
            }
        tables: dict[str, str] = dict(sorted((db_info.get("tables") or {}).items()))
        self.check_schema(exists, db_info, infos, namespace, database)
        self.check_table_set(set(tables))
        for name, define in tables.items():
            plan = _plan_table(name, define, infos[name], self.names, self.documents)
            self.validate_table(plan)
        for name in sorted(set(entry.tables) - set(tables)):
            expected = entry.tables[name]
            missing = f"table {name} is missing from the restored database"
            self.result(
                name,
                "count_matches_manifest",
                False,
                f"{missing}; the manifest has {_records(expected.count)}",
            )
            self.result(name, "hash_matches_manifest", False, f"{missing}")
        return self.results

    # -- manifest checks ---------------------------------------------------------------

    def check_schema(
        self,
        exists: bool,
        db_info: dict[str, Any],
        infos: dict[str, dict[str, Any]],
        namespace: str,
        database: str,
    ) -> None:
        if not self.entry.schema_hash:
            self.result(
                None,
                "schema_matches_manifest",
                True,
                "not checked: no fingerprint in this manifest (written by an older version)",
            )
            return
        if not exists:
            self.result(
                None,
                "schema_matches_manifest",
                False,
                f"the restored database {namespace}/{database} does not exist",
            )
            return
        # = dump.schema.schema_fingerprint, same INFO read
        got = self.hash_key.apply(fingerprint(db_info, infos))
        what = f"schema fingerprint{self._shown(got)} (INFO FOR DB and {len(infos)} tables)"
        if got == self.entry.schema_hash:
            self.result(None, "schema_matches_manifest", True, f"{what} as in the manifest")
        else:
            self.result(
                None,
                "schema_matches_manifest",
                False,
                f"{what} differs from the manifest{self._shown(self.entry.schema_hash, 's')}: "
                "a definition was added, removed or changed",
            )

    def _shown(self, digest: str, possessive: str = "") -> str:
        """A hash as a check's detail shows it: its first 16 hex digits, none for an encrypted
        backup's (details are stored in the clear; see keyed_hashes)."""
        if self.entry.encrypted:
            return ""
        return f"'{possessive} {digest[:16]}" if possessive else f" {digest[:16]}"

    def check_table_set(self, restored: set[str]) -> None:
        expected = set(self.entry.tables)
        missing, extra = sorted(expected - restored), sorted(restored - expected)
        if not missing and not extra:
            self.result(
                None, "tables_match_manifest", True, f"the {len(restored)} tables of the manifest"
            )
            return
        parts = []
        if missing:
            parts.append(f"missing from the restored database: {', '.join(missing)}")
        if extra:
            parts.append(f"not in the manifest: {', '.join(extra)}")
        self.result(None, "tables_match_manifest", False, "; ".join(parts))

    def check_counts(self, plan: _TablePlan) -> None:
        expected = self.entry.tables.get(plan.name)
        if expected is None:
            return  # reported by tables_match_manifest
        got = plan.hasher
        if plan.scan_error is not None and got.count == 0:
            for check in ("count_matches_manifest", "hash_matches_manifest"):
                self.result(
                    plan.name, check, False, f"the table could not be read: {plan.scan_error}"
                )
            return
        if got.count == expected.count:
            self.result(
                plan.name,
                "count_matches_manifest",
                True,
                f"{_records(got.count)}, as in the manifest",
            )
        else:
            self.result(
                plan.name,
                "count_matches_manifest",
                False,
                f"{_records(got.count)} restored, the manifest says {expected.count}",
            )
        digest = self.hash_key.apply(got.hexdigest())
        if digest == expected.hash:
            self.result(
                plan.name,
                "hash_matches_manifest",
                True,
                f"content hash{self._shown(digest)} as in the manifest",
            )
        else:
            self.result(
                plan.name,
                "hash_matches_manifest",
                False,
                f"content hash{self._shown(digest)} differs from the manifest"
                f"{self._shown(expected.hash, 's')}",
            )

    # -- expectations ------------------------------------------------------------------

    def validate_table(self, plan: _TablePlan) -> None:
        import pandas as pd

        columns = list(plan.columns)
        frame_columns = ["id", *columns]
        exprs = [plan.columns[c] for c in columns]
        buffered: list[list[Any]] = []
        secret = any(e.secret for e in plan.expectations)
        try:
            for page in _scan(self.conn, plan.name, exprs, with_text=True, submit=self.submit):
                for row in page:
                    plan.hasher.add(row[0])
                    buffered.append(row[1:])
                if len(buffered) >= FRAME_ROWS:
                    self.run_frame(plan, pd.DataFrame(buffered, columns=frame_columns), secret)
                    buffered = []
            if buffered:
                self.run_frame(plan, pd.DataFrame(buffered, columns=frame_columns), secret)
        except OperationFailed as exc:
            # An expression the engine refused (a field of an unexpected type, say): count and
            # hash the table without them, and report the expectations as not evaluated.
            plan.scan_error = str(exc)
            log.warning("%s table %s: %s", self.where, plan.name, exc)
            plan.hasher = TableHasher()
            try:
                for page in _scan(self.conn, plan.name, [], with_text=True, submit=self.submit):
                    for row in page:
                        plan.hasher.add(row[0])
            except OperationFailed as again:
                plan.hasher = TableHasher()
                plan.scan_error = str(again)
        if plan.scan_error is None and plan.frames > 1:
            self.recheck_uniqueness(plan)
        self.check_counts(plan)
        for expectation in plan.expectations:
            self.report(plan, expectation)

    def run_frame(self, plan: _TablePlan, frame: pd.DataFrame, secret: bool) -> None:
        import pandas as pd

        plan.frames += 1
        if plan.validation is None:
            plan.validation = self.validator.definition(plan.name, plan.expectations)
        if plan.storage_key_column is not None and self.documents is not None:
            try:
                frame["object_exists"] = _objects_exist(
                    self.documents, frame[plan.storage_key_column].astype(str).tolist()
                )
            except StoreError as exc:
                for expectation in plan.expectations:
                    if expectation.check == "document_objects_exist":
                        expectation.tally.errors.append(str(exc))
                frame["object_exists"] = True  # reported as an error above, not per record
        for expectation in plan.expectations:
            if expectation.unique:
                keys = frame[list(expectation.unique)].astype(str)
                expectation.hashes.append(pd.util.hash_pandas_object(keys, index=False).to_numpy())
        for number, result in self.validator.run(plan.validation, frame, secret=secret):
            _add_result(plan.expectations[number], result, self.sample, replace=False)

    def recheck_uniqueness(self, plan: _TablePlan) -> None:
        """Duplicates in different frames: find them by hash, then let GX name the records."""
        import numpy as np
        import pandas as pd

        for expectation in plan.expectations:
            if not expectation.unique or not expectation.hashes:
                continue
            hashes = np.concatenate(expectation.hashes)
            expectation.hashes = []
            values, counts = np.unique(hashes, return_counts=True)
            repeated = values[counts > 1]
            if not len(repeated):
                continue
            wanted = [c for c in expectation.unique if c != "id"]
            exprs = [expectation.columns[c] for c in wanted]
            rows: list[list[Any]] = []
            for page in _scan(self.conn, plan.name, exprs, with_text=False, submit=self.submit):
                frame = pd.DataFrame(page, columns=["id", *wanted])
                keys = frame[list(expectation.unique)].astype(str)
                mask = np.isin(pd.util.hash_pandas_object(keys, index=False).to_numpy(), repeated)
                rows.extend(frame[mask].values.tolist())
            candidates = pd.DataFrame(rows, columns=["id", *wanted])
            single = _Expectation(
                expectation.check, expectation.what, expectation.columns, expectation.build
            )
            definition = self.validator.definition(f"{plan.name} {expectation.check}", [single])
            for _number, result in self.validator.run(definition, candidates, secret=False):
                _add_result(expectation, result, self.sample, replace=True)

    def report(self, plan: _TablePlan, expectation: _Expectation) -> None:
        tally = expectation.tally
        name = (
            f"{expectation.gx_name} ({expectation.what})"
            if expectation.gx_name
            else expectation.what
        )
        if plan.scan_error is not None:
            self.result(
                plan.name,
                expectation.check,
                False,
                f"{name}: not evaluated, the engine refused the query: {plan.scan_error}",
            )
            return
        if tally.errors:
            self.result(
                plan.name,
                expectation.check,
                False,
                f"{name}: could not be evaluated: {tally.errors[0]}",
            )
            return
        if tally.unexpected == 0:
            counted = _records(tally.elements) if tally.elements else "no records"
            self.result(plan.name, expectation.check, True, f"{name}: {counted}, none unexpected")
            return
        detail = f"{name}: {tally.unexpected} of {_records(tally.elements)} unexpected"
        if tally.values:
            detail += f"; found {'; '.join(tally.values)}"
        if expectation.explain and tally.ids:
            explained = self.explain(plan.name, expectation.explain, tally.ids)
            if explained:
                detail += f"; {explained}"
        self.result(plan.name, expectation.check, False, detail, tally.ids)

    def explain(self, table: str, expression: str, ids: list[str]) -> str:
        """What a few failing records hold (e.g. the link that does not resolve)."""
        try:
            rows = self.conn.run_one(
                f"SELECT VALUE [<string> id, {expression}] FROM [{', '.join(ids)}]"
            )
        except OperationFailed:
            return ""
        return "; ".join(f"{record}: {text}" for record, text in rows or [])


def validate_restored(
    conn: SurrealConnection,
    entry: DatabaseEntry,
    *,
    namespace: str,
    database: str,
    documents: Store | None = None,
    sample: int = 5,
    names: SpectronNames = DEFAULT_NAMES,
    hash_key: HashKey = PLAIN,
) -> list[CheckResult]:
    """Every check of the restored copy of `entry` held by `conn` under `namespace`/`database`
    (which may differ from entry.ns/db), passed or failed; `database` of each result is
    "entry.ns/entry.db". `documents` is the document store, for the cross-store check.
    `sample` bounds each result's `failing_ids`; `hash_key` is how the entry's hashes are
    written (`restore.DatabaseRestore.hash_key`). Leaves `conn` on `namespace`/`database`."""
    return _Run(conn, entry, documents, sample, names, hash_key).run(namespace, database)
