"""A realistic, deterministic Spectron instance in a SurrealDB, for tests, demos and benchmarks.

`seed_instance` writes what a running Spectron holds (design brief, section 2):

- `spectron/metadata`, the control plane: the reference `metadata.surql` schema, one `context`
  row per Context binding its id to a namespace + database, management `api_key` rows,
  per-Context `context_api_key` rows (Argon2-shaped hashes, never a plain key) and a few
  `context_api_key_usage` rows;
- `spectron/_jobqueue` (optional): a small `job` table;
- one database per Context with the reference `context.surql` schema (HNSW `DIMENSION` set to
  the plan's embedding width) and its data: scope sets, documents (original bytes go to an
  optional document store or sink, as they would go to the document bucket; a store is probed
  before anything is written), knowledge chunks with embeddings,
  keywords and `knowledge_has_keyword` edges, sessions and turns, entities (array ids
  `entity:['person', 'alice']`), attributes and `relates_to` edges with validity windows (some
  expired, some ending in the future, most open), instructions, uncertainties, memory chunks
  with embeddings and schemaless decision traces.

Everything is a pure function of the plan: every id is explicit, every timestamp is derived
from `plan.now`, no `time::now()` or `rand()` runs in the engine, so the same plan gives
byte-identical `<string>` texts. Records are written as SurrealQL literal text in
`INSERT [ ... ] RETURN NONE` statements of up to 1000 rows, generated batch by batch: memory
stays flat whatever the scale. Only small per-entity/per-session/per-document plans (a few
numbers each) are held for the cross-references.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources

import numpy as np

from spectron_backup.errors import OperationFailed, SpectronBackupError, UsageError
from spectron_backup.stores.base import Store
from spectron_backup.surreal import SurrealConnection, surreal_identifier

DocumentSink = Callable[[str, bytes], None]
Progress = Callable[[str], None]

#: the reference time of the default plan, so that default output is deterministic
DEFAULT_NOW = datetime(2026, 11, 24, tzinfo=UTC)

CONTROL_NAMESPACE = "spectron"
METADATA_DATABASE = "metadata"
JOBQUEUE_DATABASE = "_jobqueue"

#: rows per INSERT statement (records without vectors)
BATCH_ROWS = 1000
#: floats per INSERT statement for tables with embeddings (500 rows of 384 floats)
BATCH_FLOATS = 192_000

#: records per Context at scale 1.0 (memory_chunk and knowledge_has_keyword follow from the
#: turns and documents; the total is about 1,050)
BASE_COUNTS: dict[str, int] = {
    "scope_sets": 12,
    "document": 10,
    "knowledge_chunk": 200,
    "keyword": 30,
    "session": 16,
    "turn": 250,
    "entity": 40,
    "attribute": 210,
    "relates_to": 40,
    "instruction": 8,
    "uncertainty": 12,
    "decision_trace": 24,
}

MEMORY_CATEGORIES = ("identity", "knowledge", "context")

_SECOND = 1_000_000  # microseconds
_DAY = 86_400 * _SECOND
_MAX_AGE = 400 * _DAY


@dataclass(frozen=True)
class SeedPlan:
    contexts: int = 2
    """number of Context databases"""
    scale: float = 1.0
    """1.0 is about 1,000 records per Context; records grow linearly with the scale"""
    seed: int = 0
    """same seed and plan give byte-identical data"""
    embedding_width: int = 384
    now: datetime = DEFAULT_NOW
    """reference time of every `created_at` age and validity window"""
    jobqueue: bool = True
    """also write `spectron/_jobqueue`"""

    def __post_init__(self) -> None:
        if self.contexts < 1:
            raise UsageError(f"a seed plan needs at least one Context, not {self.contexts}")
        if not self.scale > 0:
            raise UsageError(f"the seed scale must be positive, not {self.scale}")
        if self.embedding_width < 1:
            raise UsageError(f"the embedding width must be positive, not {self.embedding_width}")
        if self.now.tzinfo is None:
            object.__setattr__(self, "now", self.now.replace(tzinfo=UTC))


@dataclass(frozen=True)
class ContextInfo:
    context_id: str
    namespace: str
    database: str


@dataclass
class SeedResult:
    contexts: list[ContextInfo] = field(default_factory=list)
    records: dict[str, dict[str, int]] = field(default_factory=dict)
    """"ns/db" -> table -> records written"""
    documents: int = 0

    @property
    def total_records(self) -> int:
        return sum(sum(tables.values()) for tables in self.records.values())


# -- names --------------------------------------------------------------------------------

_NAMED_CONTEXTS = (
    ("acme-prod", "acme", "globex"),
    ("globex-main", "globex", "initech"),
    ("initech-dev", "initech", "acme"),
    ("umbrella-staging", "umbrella", "hooli"),
    ("hooli-prod", "hooli", "umbrella"),
    ("stark-eu", "stark", "wayne"),
)


def context_ids(count: int) -> list[str]:
    """The Context ids a plan of `count` Contexts uses: named ones, then `ctx-<n>`."""
    return [_context_names(i)[0] for i in range(count)]


def _context_names(index: int) -> tuple[str, str, str]:
    """(context id, primary org, secondary org) of the index-th Context."""
    if index < len(_NAMED_CONTEXTS):
        return _NAMED_CONTEXTS[index]
    n = index + 1
    return f"ctx-{n}", f"tenant{n}", _NAMED_CONTEXTS[n % len(_NAMED_CONTEXTS)][1]


def context_info(index: int) -> ContextInfo:
    context_id = _context_names(index)[0]
    slug = context_id.replace("-", "_")
    return ContextInfo(context_id=context_id, namespace=f"ctx_{slug}", database=slug)


_AGENTS = (
    "support-bot",
    "sales-assistant",
    "onboarding-guide",
    "research-agent",
    "billing-bot",
    "it-helpdesk",
)
_FIRST = (
    ("Alice", "alice"),
    ("Bob", "bob"),
    ("Carol", "carol"),
    ("Dave", "dave"),
    ("Erin", "erin"),
    ("Frank", "frank"),
    ("Grace", "grace"),
    ("Heidi", "heidi"),
    ("Ivan", "ivan"),
    ("Judy", "judy"),
    ("Mallory", "mallory"),
    ("Niaj", "niaj"),
    ("Olivia", "olivia"),
    ("Peggy", "peggy"),
    ("Rupert", "rupert"),
    ("Sybil", "sybil"),
    ("Trent", "trent"),
    ("Victor", "victor"),
    ("Walter", "walter"),
    ("Zoë", "zoe"),
)
_LAST = (
    "Nakamura",
    "Okafor",
    "Schmidt",
    "García",
    "Kowalski",
    "Andersson",
    "Dubois",
    "Rossi",
    "Singh",
    "Chen",
    "Müller",
    "O'Brien",
    "Haddad",
    "Silva",
    "Novak",
    "Ivanova",
)
_ORGS = (
    "Northwind Traders",
    "Contoso",
    "Initrode",
    "Vandelay Industries",
    "Wayne Enterprises",
    "Cyberdyne Systems",
    "Tyrell Corporation",
    "Massive Dynamic",
    "Pied Piper",
    "Aperture Science",
    "Oscorp",
    "Soylent Corp",
)
_PRODUCTS = (
    "Billing API",
    "Mobile App",
    "Analytics Dashboard",
    "Support Portal",
    "Data Connector",
    "Webhooks",
    "SSO Gateway",
    "Search Widget",
    "Reporting Suite",
    "Admin Console",
)
_PROJECTS = (
    "Q3 Migration",
    "Onboarding Revamp",
    "EU Data Residency",
    "Churn Analysis",
    "Holiday Campaign",
    "Pricing Update",
    "SOC 2 Audit",
    "Mobile Relaunch",
)
_LOCATIONS = (
    "Berlin",
    "Lisbon",
    "Austin",
    "Toronto",
    "Singapore",
    "Nairobi",
    "São Paulo",
    "Kraków",
    "Osaka",
    "Dublin",
)
_TEAMS = (
    "Platform Team",
    "Customer Success",
    "Billing Ops",
    "Data Science",
    "Security",
    "Growth",
    "Field Sales",
)
_TOOLS = ("Jira", "Slack", "Zendesk", "Salesforce", "GitHub", "Notion", "Looker", "PagerDuty")
_TIMEZONES = (
    "Europe/Berlin",
    "Europe/Lisbon",
    "America/Chicago",
    "America/Toronto",
    "Asia/Singapore",
    "Africa/Nairobi",
    "America/Sao_Paulo",
    "Asia/Tokyo",
)
_ROLES = (
    "CTO",
    "support lead",
    "account manager",
    "data engineer",
    "finance controller",
    "product manager",
    "IT administrator",
    "sales director",
)
_LANGUAGES = ("English", "German", "Portuguese", "French", "Japanese", "Spanish", "Polish")
_KEYWORDS = (
    "Authentication",
    "SSO",
    "SAML",
    "Billing",
    "Invoice",
    "Refund",
    "API key",
    "Rate limit",
    "Webhook",
    "Latency",
    "Timeout",
    "Export",
    "Import",
    "Backup",
    "Retention",
    "GDPR",
    "Data residency",
    "Encryption",
    "Onboarding",
    "Dashboard",
    "Permissions",
    "Roles",
    "Audit log",
    "Search",
    "Embedding",
    "Vector index",
    "Mobile app",
    "Notifications",
    "Integration",
    "Pricing",
    "Discount",
    "Contract",
    "Renewal",
    "Churn",
    "Incident",
    "Outage",
    "Status page",
    "SLA",
    "Support tier",
    "Escalation",
    "Password reset",
    "2FA",
    "Session timeout",
    "CSV",
    "Reporting",
    "Analytics",
    "Migration",
    "Deprecation",
    "Release",
    "Changelog",
    "Sandbox",
    "Quota",
    "Storage",
    "On-call",
)
_SECTIONS = (
    "Overview",
    "Getting started",
    "Configuration",
    "Authentication",
    "Troubleshooting",
    "Limits and quotas",
    "Billing",
    "FAQ",
    "Release notes",
    "Security",
)
_DOC_KINDS = (
    "Administrator Guide",
    "API Reference",
    "Release Notes",
    "Onboarding Checklist",
    "Security Whitepaper",
    "Troubleshooting FAQ",
    "Pricing Policy",
    "Incident Runbook",
    "Integration Guide",
)
_INSTRUCTIONS = (
    ("tone", "Answer in a friendly, concise tone; avoid jargon unless the user uses it first."),
    ("language", "Reply in the language the user writes in."),
    ("escalation", "Escalate billing disputes over $500 to a human agent."),
    ("privacy", "Never repeat full API keys, passwords or card numbers back to the user."),
    ("citations", "Cite the source document title when answering from the knowledge base."),
    ("format", "Use numbered steps for procedures and keep each step to one action."),
    ("greeting", "Greet returning users by their first name."),
    ("timezone", "Quote times in the user's timezone when it is known."),
    ("refunds", "Do not promise refunds; explain the policy and offer to open a ticket."),
    ("outages", "During an incident, link the status page before troubleshooting."),
)
_UNCERTAIN_REASONS = (
    "conflicting statements in two sessions",
    "mentioned once and never confirmed",
    "the user said 'maybe', so it was not stored as a fact",
    "the stored value is older than six months",
    "two entities share this name; unclear which one was meant",
    "a document and a conversation disagree",
)
_TYPE_CYCLE = (
    "person",
    "person",
    "organization",
    "person",
    "product",
    "project",
    "person",
    "location",
    "team",
    "tool",
)
_TYPE_CATEGORY = {
    "person": ("identity", "identity", "identity", "context", "knowledge"),
    "organization": ("knowledge", "knowledge", "identity", "context"),
    "product": ("knowledge", "knowledge", "context"),
    "project": ("context", "context", "knowledge"),
    "location": ("knowledge", "knowledge", "context"),
    "team": ("identity", "knowledge", "context"),
    "tool": ("knowledge", "context"),
}
_ATTRIBUTE_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "person": (
        ("email", "identity"),
        ("role", "identity"),
        ("timezone", "identity"),
        ("preferred_language", "identity"),
        ("current_task", "context"),
        ("phone", "identity"),
        ("communication_style", "knowledge"),
        ("availability", "context"),
        ("manager", "knowledge"),
    ),
    "organization": (
        ("industry", "knowledge"),
        ("plan", "knowledge"),
        ("headquarters", "knowledge"),
        ("employee_count", "knowledge"),
        ("renewal_date", "context"),
        ("primary_contact", "identity"),
        ("support_tier", "knowledge"),
    ),
    "product": (
        ("version", "knowledge"),
        ("status", "context"),
        ("owner", "knowledge"),
        ("pricing", "knowledge"),
        ("known_issue", "context"),
    ),
    "project": (
        ("status", "context"),
        ("deadline", "context"),
        ("owner", "knowledge"),
        ("budget", "knowledge"),
        ("blocker", "context"),
    ),
    "location": (
        ("timezone", "knowledge"),
        ("office_address", "knowledge"),
        ("weather_note", "context"),
    ),
    "team": (
        ("lead", "identity"),
        ("size", "knowledge"),
        ("focus", "knowledge"),
        ("on_call", "context"),
    ),
    "tool": (
        ("usage", "knowledge"),
        ("integration_status", "context"),
        ("license_seats", "knowledge"),
    ),
}
_LABELS: dict[tuple[str, str], tuple[str, ...]] = {
    ("person", "organization"): ("works_at", "customer_of"),
    ("person", "person"): ("reports_to", "knows", "manages"),
    ("person", "product"): ("uses", "owns"),
    ("person", "project"): ("works_on", "leads"),
    ("person", "team"): ("member_of",),
    ("person", "location"): ("based_in",),
    ("person", "tool"): ("uses",),
    ("organization", "product"): ("subscribes_to",),
    ("organization", "location"): ("headquartered_in",),
    ("organization", "organization"): ("partner_of", "subsidiary_of"),
    ("project", "product"): ("depends_on",),
    ("team", "project"): ("owns",),
    ("team", "tool"): ("uses",),
}


def _ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def _user_name(m: int) -> str:
    """The m-th end-user path segment: alice, bob, ..., then alice-nakamura, ..."""
    first = _FIRST[m % len(_FIRST)][1]
    if m < len(_FIRST):
        return first
    k = m // len(_FIRST) - 1
    last = _ascii_slug(_LAST[k % len(_LAST)])
    suffix = k // len(_LAST)
    return f"{first}-{last}" + (f"-{suffix + 1}" if suffix else "")


# -- SurrealQL literals --------------------------------------------------------------------

_PLAIN_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _q(text: str) -> str:
    """A SurrealQL string literal."""
    return json.dumps(text, ensure_ascii=False)


def _rid(table: str, key: str | int) -> str:
    if isinstance(key, int) or _PLAIN_ID.match(key):
        return f"{table}:{key}"
    return f"{table}:`" + key.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _float(value: float, digits: int = 4) -> str:
    return repr(round(float(value), digits))


class _Clock:
    """Times as integer microseconds before/after `now`, printed as datetime literals."""

    def __init__(self, now: datetime) -> None:
        now = now.astimezone(UTC).replace(tzinfo=None)
        self.epoch = datetime(1970, 1, 1)
        self.now_us = (now - self.epoch) // timedelta(microseconds=1)

    def ago(self, age_us: int) -> int:
        return self.now_us - age_us

    def lit(self, at_us: int) -> str:
        moment = self.epoch + timedelta(microseconds=at_us)
        return "d'" + moment.isoformat(timespec="microseconds") + "Z'"


def _stream_seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _rng(*parts: object) -> random.Random:
    return random.Random(_stream_seed(*parts))


def _age(rng: random.Random, max_age: int = _MAX_AGE) -> int:
    """An age in microseconds in [0, max_age), more of them recent than old."""
    return int(max_age * rng.random() ** 1.6)


def _split(total: int, parts: int, rng: random.Random, minimum: int = 1) -> list[int]:
    """`total` split over `parts` uneven positive shares (each at least `minimum` if possible)."""
    if parts <= 0:
        return []
    floor = minimum if total >= minimum * parts else 0
    counts = [floor] * parts
    rest = total - floor * parts
    weights = [rng.lognormvariate(0.0, 0.7) for _ in range(parts)]
    whole = sum(weights)
    running = 0.0
    given = 0
    for i, weight in enumerate(weights):
        running += weight
        target = round(rest * running / whole)
        counts[i] += target - given
        given = target
    return counts


def _argon2_like(*parts: object) -> str:
    """An Argon2id PHC string with a deterministic salt and hash, shaped like a real one."""
    digest = hashlib.sha512("/".join(map(str, ("argon2", *parts))).encode()).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode().rstrip("=")

    return f"$argon2id$v=19$m=65536,t=3,p=4${b64(digest[:16])}${b64(digest[16:48])}"


def _content_hash(data: bytes) -> str:
    """`blake3:<64 hex>` (sha256 stands in when the blake3 package is not installed)."""
    try:
        import blake3  # type: ignore[import-not-found]

        return "blake3:" + blake3.blake3(data).hexdigest()
    except ImportError:
        return "blake3:" + hashlib.sha256(data).hexdigest()


def _load_schema(name: str) -> str:
    return resources.files("spectron_backup").joinpath("schema", name).read_text("utf-8")


def context_schema(embedding_width: int) -> str:
    """The reference Context schema with the HNSW indexes' DIMENSION set to the width."""
    text = _load_schema("context.surql")
    return re.sub(r"(HNSW\s+DIMENSION\s+)\d+", rf"\g<1>{embedding_width}", text)


def metadata_schema() -> str:
    return _load_schema("metadata.surql")


JOB_SCHEMA = """
DEFINE TABLE job SCHEMALESS;
DEFINE INDEX status_index ON job FIELDS status;
DEFINE INDEX context_index ON job FIELDS context;
"""


# -- writing ------------------------------------------------------------------------------


class _Target:
    """One database being seeded: runs statements and counts what each table received."""

    def __init__(self, conn: SurrealConnection, namespace: str, database: str) -> None:
        self.conn = conn
        self.namespace = namespace
        self.database = database
        self.counts: dict[str, int] = {}

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.database}"

    def select(self) -> None:
        ns, db = surreal_identifier(self.namespace), surreal_identifier(self.database)
        self.execute(
            f"DEFINE NAMESPACE IF NOT EXISTS {ns}; USE NS {ns}; DEFINE DATABASE IF NOT EXISTS {db};",
            what="defining the namespace and database",
        )
        self.conn.use(self.namespace, self.database)

    def execute(self, sql: str, table: str = "", *, what: str = "") -> None:
        """Run statements; any failure raises OperationFailed naming the database and table."""
        action = what or f"writing table {table!r}"
        try:
            results = self.conn.query(sql)
        except OperationFailed as exc:
            raise OperationFailed(f"seeding {self.where}: {action} failed: {exc}") from None
        for index, item in enumerate(results):
            if item.get("status") != "OK":
                raise OperationFailed(
                    f"seeding {self.where}: {action} failed "
                    f"(statement {index + 1}): {item.get('result')}"
                )

    def apply_schema(self, text: str, what: str) -> None:
        try:
            results = self.conn.query(text)
        except OperationFailed as exc:
            raise OperationFailed(f"seeding {self.where}: the {what} was rejected: {exc}") from None
        statements = [s.strip() for s in re.sub(r"--[^\n]*", "", text).split(";")]
        statements = [s for s in statements if s]
        for index, item in enumerate(results):
            if item.get("status") != "OK":
                hint = _statement_table(statements, index)
                raise OperationFailed(
                    f"seeding {self.where}: the {what} failed at statement {index + 1}{hint}: "
                    f"{item.get('result')}"
                )

    def writer(self, table: str, *, relation: bool = False) -> _Writer:
        return _Writer(self, table, relation=relation)

    def vector_writer(
        self, table: str, width: int, seed_parts: tuple[object, ...]
    ) -> _VectorWriter:
        return _VectorWriter(self, table, width, seed_parts)


def _statement_table(statements: list[str], index: int) -> str:
    """' (table x)' for the index-th statement of a schema when it names one."""
    if index < len(statements):
        match = re.search(r"\bON\s+(?:TABLE\s+)?(\w+)|\bTABLE\s+(\w+)", statements[index])
        if match:
            return f" (table {match.group(1) or match.group(2)!r})"
    return ""


class _Writer:
    """Buffers row literals of one table and writes them in `INSERT [...]` batches."""

    def __init__(self, target: _Target, table: str, *, relation: bool = False) -> None:
        self.target = target
        self.table = table
        self.relation = relation
        self.rows: list[str] = []
        self.batch = BATCH_ROWS
        self.written = 0

    def add(self, row: str) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch:
            self.flush()

    def _render(self) -> list[str]:
        return self.rows

    def flush(self) -> None:
        if not self.rows:
            return
        rows = self._render()
        kind = "INSERT RELATION" if self.relation else "INSERT"
        self.target.execute(f"{kind} [{', '.join(rows)}] RETURN NONE;", self.table)
        self.written += len(rows)
        counts = self.target.counts
        counts[self.table] = counts.get(self.table, 0) + len(rows)
        self.rows = []

    def close(self) -> int:
        self.flush()
        return self.written


class _VectorWriter(_Writer):
    """Rows given without their closing brace; an `embedding` is appended to those that
    ask for one, from a generator seeded per batch (unit vectors of float32 values)."""

    def __init__(
        self, target: _Target, table: str, width: int, seed_parts: tuple[object, ...]
    ) -> None:
        super().__init__(target, table)
        self.width = width
        self.seed_parts = seed_parts
        self.batch = max(20, min(BATCH_ROWS, BATCH_FLOATS // width))
        self.wants: list[bool] = []
        self.batch_no = 0

    def add_row(self, open_row: str, embedding: bool = True) -> None:
        self.rows.append(open_row)
        self.wants.append(embedding)
        if len(self.rows) >= self.batch:
            self.flush()

    def _render(self) -> list[str]:
        needed = sum(self.wants)
        rng = np.random.default_rng(_stream_seed(*self.seed_parts, self.batch_no))
        self.batch_no += 1
        vectors = rng.standard_normal((needed, self.width), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        lists = iter(vectors.tolist())
        rendered = []
        for row, wants in zip(self.rows, self.wants, strict=True):
            if wants:
                rendered.append(f"{row}, embedding: [{','.join(map(repr, next(lists)))}] }}")
            else:
                rendered.append(row + " }")
        self.wants = []
        return rendered


# -- the generator ------------------------------------------------------------------------


@dataclass(slots=True)
class _Attribute:
    """One attribute of the entity being written (an entity's attributes are few)."""

    id: str
    key: str
    value: str
    category: str
    scope: str
    created: int
    valid_from: int | None
    source: str
    valid_until: int | None = None
    supersedes: str | None = None


def _scaled(table: str, scale: float, minimum: int = 1) -> int:
    return max(minimum, round(BASE_COUNTS[table] * scale))


class _ContextSeeder:
    """Generates one Context database from the plan, table by table."""

    def __init__(self, plan: SeedPlan, index: int, target: _Target | None) -> None:
        self.plan = plan
        self.index = index
        self.target = target
        self.context_id, self.org, self.org2 = _context_names(index)
        self.clock = _Clock(plan.now)
        self.key = (plan.seed, self.context_id)
        scale = plan.scale

        self.n_scopes = _scaled("scope_sets", scale, minimum=8)
        self.n_docs = _scaled("document", scale)
        self.n_chunks = _scaled("knowledge_chunk", scale)
        self.n_keywords = _scaled("keyword", scale)
        self.n_sessions = _scaled("session", scale)
        self.n_turns = max(2 * self.n_sessions, _scaled("turn", scale))
        self.n_entities = max(2, _scaled("entity", scale))
        self.n_attributes = _scaled("attribute", scale)
        self.n_relations = _scaled("relates_to", scale)
        self.n_instructions = _scaled("instruction", scale)
        self.n_uncertainties = _scaled("uncertainty", scale)
        self.n_traces = _scaled("decision_trace", scale)

        # Small per-item plans that other tables refer to (a few numbers each).
        rng = self.rng("sessions")
        self.turn_counts = _split(self.n_turns, self.n_sessions, rng, minimum=2)
        self.session_start: list[int] = []
        self.session_scope: list[int] = []
        for count in self.turn_counts:
            span = count * 130 * _SECOND + _DAY // 24
            self.session_start.append(self.clock.ago(span + _age(rng, _MAX_AGE - span)))
            self.session_scope.append(self.pick_scope(rng))

        rng = self.rng("documents")
        statuses = []
        for i in range(self.n_docs):
            roll = rng.random()
            if i == 0 or roll < 0.84:
                statuses.append("ready")
            elif roll < 0.89:
                statuses.append("embedding")
            elif roll < 0.92:
                statuses.append("keywording")
            elif roll < 0.96:
                statuses.append("queued")
            else:
                statuses.append("failed")
        self.doc_status = statuses
        self.doc_created = [self.clock.ago(_DAY + _age(rng, _MAX_AGE - _DAY)) for _ in statuses]
        chunked = [i for i, s in enumerate(statuses) if s in ("ready", "embedding", "keywording")]
        self.doc_chunks = [0] * self.n_docs
        for i, count in zip(chunked, _split(self.n_chunks, len(chunked), rng), strict=True):
            self.doc_chunks[i] = count

        rng = self.rng("entities")
        self.entity_source: list[tuple[int, int] | None] = []
        self.entity_created: list[int] = []
        for _ in range(self.n_entities):
            if rng.random() < 0.7:
                session = rng.randrange(self.n_sessions)
                seq = rng.randrange(self.turn_counts[session])
                self.entity_source.append((session, seq))
                self.entity_created.append(self.turn_time(session, seq) + 4 * _SECOND)
            else:
                self.entity_source.append(None)
                self.entity_created.append(self.clock.ago(_DAY + _age(rng, _MAX_AGE - _DAY)))
        self._type_counts: dict[str, int] = {}

    # -- helpers ------------------------------------------------------------------------

    @property
    def out(self) -> _Target:
        if self.target is None:
            raise RuntimeError("this Context seeder only plans; it has no target database")
        return self.target

    def rng(self, stream: str) -> random.Random:
        return _rng(*self.key, stream)

    def pick_scope(self, rng: random.Random) -> int:
        """A scope set index, organisation-wide clauses more often than narrow ones."""
        return int(self.n_scopes * rng.random() ** 2)

    def scope(self, rng: random.Random) -> str:
        """A record's scope: mostly one clause, sometimes two (OR), rarely none."""
        roll = rng.random()
        if roll < 0.05:
            return "[]"
        first = self.pick_scope(rng)
        if roll < 0.85 or self.n_scopes < 2:
            return f"[scope_sets:{first + 1}]"
        second = (first + 1 + rng.randrange(self.n_scopes - 1)) % self.n_scopes
        return f"[scope_sets:{first + 1}, scope_sets:{second + 1}]"

    def scope_paths(self, k: int) -> list[str]:
        org, org2 = f"org/{self.org}", f"org/{self.org2}"
        fixed = [
            [org],
            [org, "agent/support-bot"],
            [org, "agent/support-bot", "user/alice"],
            [org2],
            [f"{org}/emea", "agent/sales-assistant"],
            [org, "agent/sales-assistant"],
            [org, "agent/onboarding-guide"],
            [org2, "agent/support-bot"],
        ]
        if k < len(fixed):
            return fixed[k]
        j = k - len(fixed)
        m, kind = divmod(j, 4)
        agent = _AGENTS[m % len(_AGENTS)]
        if kind == 0:
            return [org, f"agent/{agent}", f"user/{_user_name(m + 1)}"]
        if kind == 1:
            return [org, f"user/{_user_name(m)}"]
        if kind == 2:
            return [org2, f"agent/{agent}", f"user/{_user_name(m)}"]
        region = ("emea", "amer", "apac")[m % 3]
        return [f"{org}/{region}", f"user/{_user_name(m)}"]

    def turn_time(self, session: int, seq: int) -> int:
        jitter = (seq * seq * 7 + session * 13) % 30
        return self.session_start[session] + (seq * 45 + jitter) * _SECOND

    def turn_id(self, session: int, seq: int) -> str:
        return f"turn:s{session + 1:04d}t{seq:03d}"

    def random_turn(self, rng: random.Random) -> tuple[int, int]:
        session = rng.randrange(self.n_sessions)
        return session, rng.randrange(self.turn_counts[session])

    def entity(self, i: int) -> tuple[str, str, str]:
        """(type, normalised name, display name) of the i-th entity."""
        cycle = len(_TYPE_CYCLE)
        kind = _TYPE_CYCLE[i % cycle]
        block, pos = divmod(i, cycle)
        k = block * _TYPE_CYCLE.count(kind) + _TYPE_CYCLE[:pos].count(kind)
        if kind == "person":
            first = _FIRST[k % len(_FIRST)][0]
            if k < len(_FIRST):
                name = first
            else:
                r = k // len(_FIRST) - 1
                name = f"{first} {_LAST[r % len(_LAST)]}"
                if r >= len(_LAST):
                    name += f" {r // len(_LAST) + 1}"
        else:
            names = {
                "organization": (self.org.capitalize(), self.org2.capitalize(), *_ORGS),
                "product": _PRODUCTS,
                "project": _PROJECTS,
                "location": _LOCATIONS,
                "team": _TEAMS,
                "tool": _TOOLS,
            }[kind]
            name = names[k % len(names)]
            if k >= len(names):
                name += f" {k // len(names) + 1}"
        return kind, _ascii_slug(name), name

    def entity_id(self, i: int) -> str:
        kind, normalised, _ = self.entity(i)
        return f"entity:[{_q(kind)}, {_q(normalised)}]"

    def source_turn(self, rng: random.Random, probability: float) -> tuple[str, int | None]:
        """(`, source_turn: ...` or '', the turn's time) with the given probability."""
        if rng.random() >= probability:
            return "", None
        session, seq = self.random_turn(rng)
        return f", source_turn: {self.turn_id(session, seq)}", self.turn_time(session, seq)

    def after(self, rng: random.Random, start: int) -> int:
        """A time between `start` and now, nearer the start."""
        span = max(self.clock.now_us - start, 1)
        return start + int(span * rng.random() ** 3)

    # -- tables -------------------------------------------------------------------------

    def run(self, documents: DocumentSink | None, progress: Progress | None) -> int:
        target = self.out
        target.select()
        target.apply_schema(context_schema(self.plan.embedding_width), "Context schema")
        steps: tuple[tuple[str, Callable[[], object]], ...] = (
            ("scope sets", self.write_scope_sets),
            ("documents, chunks and keywords", lambda: self.write_documents(documents)),
            ("sessions, turns and memory chunks", self.write_sessions),
            ("entities, attributes and relations", self.write_entities),
            ("instructions and uncertainties", self.write_instructions),
            ("decision traces", self.write_traces),
        )
        for label, step in steps:
            step()
            if progress:
                progress(f"{self.context_id}: {label} written")
        return self.n_docs

    def write_scope_sets(self) -> None:
        writer = self.out.writer("scope_sets")
        for k in range(self.n_scopes):
            paths = ", ".join(_q(p) for p in self.scope_paths(k))
            writer.add(f"{{ id: scope_sets:{k + 1}, paths: [{paths}] }}")
        writer.close()

    def paragraph(self, rng: random.Random, product: str) -> str:
        feature = rng.choice(_KEYWORDS).lower()
        sentences = [
            f"{product} supports {feature} for every workspace on the {rng.choice(('Team', 'Business', 'Enterprise'))} plan.",
            f"To enable it, open Settings > {rng.choice(_SECTIONS)} and switch on '{feature}'.",
            f"Requests are limited to {rng.choice((60, 120, 600, 1200))} per minute per API key; "
            f"bursts above that return HTTP 429 with a Retry-After header.",
            f"Changes take effect within {rng.randint(1, 15)} minutes and are recorded in the audit log.",
            f"If {feature} fails with error {rng.choice(('E1001', 'E2040', 'E3172', 'AUTH-17', 'SYNC-9'))}, "
            f"check that the {rng.choice(('token', 'certificate', 'webhook secret', 'region'))} is still valid.",
            f"Administrators in {rng.choice(_LOCATIONS)} can export the data as CSV or JSON at any time.",
            f"Since version {rng.randint(2, 9)}.{rng.randint(0, 20)}, {feature} also works with "
            f"{rng.choice(_TOOLS)} through the {rng.choice(_PRODUCTS)}.",
            f"Data is encrypted at rest (AES-256) and in transit (TLS 1.3); keys rotate every {rng.choice((30, 90, 180))} days.",
            "Note: this behaviour differs from earlier releases, where the setting was per user.",
            f"Contact support with the request id if the problem persists for more than {rng.randint(2, 48)} hours.",
        ]
        count = rng.randint(2, 6)
        return " ".join(rng.sample(sentences, count))

    def write_documents(self, sink: DocumentSink | None) -> None:
        target, width = self.out, self.plan.embedding_width
        docs = target.writer("document")
        chunks = target.vector_writer("knowledge_chunk", width, (*self.key, "knowledge_chunk"))
        edges = target.writer("knowledge_has_keyword", relation=True)
        rng = self.rng("document rows")
        keyword_docs = [0] * self.n_keywords
        keyword_first: list[int | None] = [None] * self.n_keywords

        for i in range(self.n_docs):
            doc_key = f"d{i + 1:04d}"
            doc_id = f"document:{doc_key}"
            status = self.doc_status[i]
            created = self.doc_created[i]
            product = rng.choice(_PRODUCTS)
            title = f"{product} {rng.choice(_DOC_KINDS)}"
            markdown = rng.random() < 0.4
            ext, mime = (".md", "text/markdown") if markdown else (".txt", "text/plain")
            storage_key = f"docs/{self.context_id}/{doc_key}{ext}"
            n_paragraphs = self.doc_chunks[i] or rng.randint(3, 12)
            header = f"# {title}" if markdown else title
            text = header
            spans = []
            for p in range(n_paragraphs):
                section = _SECTIONS[(p * len(_SECTIONS)) // n_paragraphs]
                body = self.paragraph(rng, product)
                text += "\n\n"
                start = len(text)
                text += body
                spans.append((section, start, len(text), body))
            data = (text + "\n").encode("utf-8")
            if sink is not None:
                sink(storage_key, data)
            scope = self.scope(rng)
            processed = created + rng.randint(20, 900) * _SECOND
            version = 2 if rng.random() < 0.15 else 1
            updated = self.after(rng, processed) if version == 2 else processed
            observed = ""
            if rng.random() < 0.5:
                observed = f", observed_at: {self.clock.lit(created - rng.randint(0, 90) * _DAY)}"
            error = ""
            if status == "failed":
                error = ", error: " + _q(
                    rng.choice(
                        (
                            "extraction failed: the file is password-protected",
                            "embedding provider returned 429 Too Many Requests after 5 retries",
                            "unsupported encoding: could not decode bytes as UTF-8",
                        )
                    )
                )
            source = rng.choice(
                (
                    "upload",
                    f"confluence://{self.org.upper()}/pages/{rng.randint(10000, 99999)}",
                    f"gdrive://{rng.randint(10**9, 10**10 - 1)}",
                    f"https://docs.{self.org}.example.com/{_ascii_slug(title)}",
                )
            )
            docs.add(
                f"{{ id: {doc_id}, title: {_q(title)}, mime_type: {_q(mime)}, source: {_q(source)}, "
                f"storage_key: {_q(storage_key)}, content_hash: {_q(_content_hash(data))}, "
                f"size_bytes: {len(data)}{observed}, scope: {scope}, version: {version}, "
                f"status: {_q(status)}{error}, created_at: {self.clock.lit(created)}, "
                f"updated_at: {self.clock.lit(updated)} }}"
            )
            chunk_time = self.clock.lit(created + rng.randint(5, 20) * _SECOND)
            for position in range(self.doc_chunks[i]):
                section, start, end, body = spans[position]
                chunks.add_row(
                    f"{{ id: knowledge_chunk:{doc_key}c{position:04d}, document: {doc_id}, "
                    f"text: {_q(body)}, position: {position}, section: {_q(section)}, "
                    f"char_start: {start}, char_end: {end}, token_count: {len(body) // 4 + 1}, "
                    f"scope: {scope}, created_at: {chunk_time}",
                    embedding=status != "embedding",
                )
            if status == "ready":
                krng = _rng(*self.key, "keywords of", i)
                chosen: list[int] = []
                for _ in range(krng.randint(3, 7)):
                    k = int(self.n_keywords * krng.random() ** 2)
                    if k not in chosen:
                        chosen.append(k)
                for k in chosen:
                    keyword_docs[k] += 1
                    first = keyword_first[k]
                    keyword_first[k] = processed if first is None else min(first, processed)
                    edges.add(
                        f"{{ id: knowledge_has_keyword:{doc_key}k{k + 1:04d}, in: {doc_id}, "
                        f"out: keyword:k{k + 1:04d}, score: {_float(0.35 + 0.65 * krng.random())}, "
                        f"created_at: {self.clock.lit(processed)} }}"
                    )
        docs.close()
        chunks.close()
        edges.close()

        keywords = self.out.writer("keyword")
        rng = self.rng("keyword rows")
        base = len(_KEYWORDS)
        for k in range(self.n_keywords):
            if k < base:
                word = _KEYWORDS[k]
            else:
                a, b = divmod(k - base, base)
                word = f"{_KEYWORDS[a % base]} {_KEYWORDS[b].lower()}"
                if a >= base:
                    word += f" {a // base + 1}"
            first = keyword_first[k]
            created = first if first is not None else self.clock.ago(_age(rng))
            keywords.add(
                f"{{ id: keyword:k{k + 1:04d}, text: {_q(word)}, normalised: {_q(word.lower())}, "
                f"document_count: {keyword_docs[k]}, created_at: {self.clock.lit(created)} }}"
            )
        keywords.close()

    def turn_content(self, rng: random.Random, role: str, user: str, agent: str) -> str:
        product = rng.choice(_PRODUCTS)
        project = rng.choice(_PROJECTS)
        person = rng.choice(_FIRST)[0]
        keyword = rng.choice(_KEYWORDS).lower()
        if role == "system":
            return (
                f"You are {agent}, the assistant of {self.org.capitalize()}. Follow the active "
                "instructions, cite knowledge-base documents by title, and ask when unsure."
            )
        if role == "tool":
            payload = {
                "tool": rng.choice(("search_knowledge", "lookup_account", "create_ticket")),
                "query": f"{product} {keyword}",
                "results": rng.randint(0, 8),
                "latency_ms": rng.randint(12, 900),
            }
            return json.dumps(payload)
        if role == "user":
            options = (
                f"Hi, it's {user} from {self.org.capitalize()}. The {product} keeps failing with "
                f"a {keyword} error since this morning. Can you help?",
                f"How do I set up {keyword} in the {product}?",
                f"We moved the team to {rng.choice(_LOCATIONS)}; please use {rng.choice(_TIMEZONES)} "
                "for my meetings from now on.",
                f"What's the status of {project}? {person} said it might slip.",
                f"Please remember that {person} is our new {rng.choice(_ROLES)}.",
                f"Is {keyword} included in our plan, or do we need the Enterprise tier?",
                f"I'm on vacation until the {rng.randint(1, 28)}th — send anything urgent to {person}.",
                f"Can you summarise the {rng.choice(_DOC_KINDS).lower()} for the {product}?",
            )
        else:
            options = (
                f"Thanks {user}! I checked the {product}: the {keyword} errors started after the "
                f"{rng.randint(2, 9)}.{rng.randint(0, 20)} release. A fix is rolling out; until then, "
                "retry with a fresh token.",
                f"Here is how to set up {keyword}:\n1. Open Settings > {rng.choice(_SECTIONS)}.\n"
                f"2. Switch on '{keyword}'.\n3. Save and wait about {rng.randint(1, 15)} minutes.",
                f"Got it — I'll remember that {person} is your new {rng.choice(_ROLES)}.",
                f"{project} is {rng.choice(('on track', 'at risk', 'blocked on legal review', 'done'))}; "
                f"the next milestone is in {rng.randint(2, 30)} days.",
                f"According to the {product} {rng.choice(_DOC_KINDS)}, {keyword} is available on "
                "the Business and Enterprise plans.",
                "I'm not sure about that yet. Could you confirm which workspace you mean?",
            )
        return rng.choice(options)

    def write_sessions(self) -> None:
        target, width = self.out, self.plan.embedding_width
        sessions = target.writer("session")
        turns = target.writer("turn")
        memories = target.vector_writer("memory_chunk", width, (*self.key, "memory_chunk"))
        rng = self.rng("session rows")
        memory_no = 0
        for s in range(self.n_sessions):
            session_id = f"session:s{s + 1:04d}"
            scope_index = self.session_scope[s]
            scope = f"[scope_sets:{scope_index + 1}]"
            paths = self.scope_paths(scope_index)
            user = next((p.split("/")[1] for p in paths if p.startswith("user/")), "guest")
            agent = next((p.split("/")[1] for p in paths if p.startswith("agent/")), "support-bot")
            display_user = user.split("-")[0].capitalize()
            metadata = (
                f"{{ channel: {_q(rng.choice(('web', 'slack', 'api', 'email', 'mobile')))}, "
                f"agent: {_q(agent)}, user: {_q(user)}, client: {_q(rng.choice(('widget/3.4.1', 'sdk-python/1.8.0', 'slack-app/2.0')))} }}"
            )
            sessions.add(
                f"{{ id: {session_id}, scope: {scope}, metadata: {metadata}, "
                f"created_at: {self.clock.lit(self.session_start[s])} }}"
            )
            count = self.turn_counts[s]
            roles = ["system"] if rng.random() < 0.3 else []
            while len(roles) < count:
                roles.append("user")
                roles.append("assistant")
                if rng.random() < 0.15:
                    roles.append("tool")
                    roles.append("assistant")
            for seq, role in enumerate(roles[:count]):
                turn_id = self.turn_id(s, seq)
                at = self.turn_time(s, seq)
                content = self.turn_content(rng, role, display_user, agent)
                turns.add(
                    f"{{ id: {turn_id}, session: {session_id}, role: {_q(role)}, "
                    f"content: {_q(content)}, seq: {seq}, created_at: {self.clock.lit(at)} }}"
                )
                if role in ("user", "assistant") and rng.random() < 0.6:
                    memory_no += 1
                    memories.add_row(
                        f"{{ id: memory_chunk:m{memory_no:06d}, session: {session_id}, "
                        f"turn: {turn_id}, text: {_q(content[:600])}, role: {_q(role)}, "
                        f"scope: {scope}, created_at: {self.clock.lit(at + 2 * _SECOND)}"
                    )
            if count >= 12:
                memory_no += 1
                last = self.turn_time(s, count - 1)
                summary = (
                    f"Session summary: {display_user} talked with {agent} about "
                    f"{rng.choice(_PRODUCTS)} and {rng.choice(_KEYWORDS).lower()} over {count} turns."
                )
                memories.add_row(
                    f"{{ id: memory_chunk:m{memory_no:06d}, session: {session_id}, "
                    f"text: {_q(summary)}, role: 'summary', scope: {scope}, "
                    f"created_at: {self.clock.lit(last + 30 * _SECOND)}"
                )
        sessions.close()
        turns.close()
        memories.close()

    def attribute_value(self, rng: random.Random, key: str, name: str) -> str:
        slug = _ascii_slug(name).replace("-", ".")
        simple = {
            "email": lambda: f"{slug}@{self.org}.example.com",
            "role": lambda: rng.choice(_ROLES),
            "timezone": lambda: rng.choice(_TIMEZONES),
            "preferred_language": lambda: rng.choice(_LANGUAGES),
            "current_task": lambda: f"preparing the {rng.choice(_PROJECTS)} review",
            "phone": lambda: (
                f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(1000000, 9999999)}"
            ),
            "communication_style": lambda: rng.choice(
                ("prefers short answers", "likes detailed explanations", "formal", "uses emoji")
            ),
            "availability": lambda: rng.choice(
                ("on vacation", "part-time on Fridays", "travelling", "available")
            ),
            "manager": lambda: rng.choice(_FIRST)[0],
            "industry": lambda: rng.choice(
                ("logistics", "retail", "fintech", "healthcare", "media")
            ),
            "plan": lambda: rng.choice(("Team", "Business", "Enterprise")),
            "headquarters": lambda: rng.choice(_LOCATIONS),
            "employee_count": lambda: str(rng.choice((12, 45, 180, 950, 4200))),
            "renewal_date": lambda: f"2027-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "primary_contact": lambda: rng.choice(_FIRST)[0],
            "support_tier": lambda: rng.choice(("standard", "priority", "premium")),
            "version": lambda: f"{rng.randint(2, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
            "status": lambda: rng.choice(("on track", "at risk", "blocked", "done", "beta", "GA")),
            "owner": lambda: rng.choice(_FIRST)[0],
            "pricing": lambda: f"${rng.choice((9, 29, 49, 99, 499))} per seat per month",
            "known_issue": lambda: f"{rng.choice(_KEYWORDS).lower()} errors after the last release",
            "deadline": lambda: f"2027-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "budget": lambda: f"€{rng.randint(5, 500)}k",
            "blocker": lambda: rng.choice(
                ("legal review", "vendor contract", "missing API", "none")
            ),
            "office_address": lambda: (
                f"{rng.randint(1, 200)} {rng.choice(('Main St', 'Harbour Rd', 'Rua Augusta', 'Friedrichstraße'))}"
            ),
            "weather_note": lambda: rng.choice(
                ("office closed for a storm", "heatwave: remote work")
            ),
            "lead": lambda: rng.choice(_FIRST)[0],
            "size": lambda: str(rng.randint(3, 40)),
            "focus": lambda: rng.choice(_KEYWORDS).lower(),
            "on_call": lambda: rng.choice(_FIRST)[0],
            "usage": lambda: rng.choice(("ticketing", "chat", "CRM", "code review", "dashboards")),
            "integration_status": lambda: rng.choice(("connected", "token expired", "pending")),
            "license_seats": lambda: str(rng.choice((5, 10, 25, 100))),
        }
        return simple[key]()

    def write_entities(self) -> None:
        target = self.out
        entities = target.writer("entity")
        attributes = target.writer("attribute")
        rng = self.rng("entity rows")
        counts = _split(self.n_attributes, self.n_entities, self.rng("attribute counts"), minimum=1)
        attribute_no = 0
        for i in range(self.n_entities):
            kind, _normalised, name = self.entity(i)
            entity_id = self.entity_id(i)
            created = self.entity_created[i]
            source = self.entity_source[i]
            source_turn = f", source_turn: {self.turn_id(*source)}" if source else ""
            category = rng.choice(_TYPE_CATEGORY[kind])
            scope = self.scope(rng)
            updated = self.after(rng, created)
            entities.add(
                f"{{ id: {entity_id}, name: {_q(name)}, type: {_q(kind)}, "
                f"memory_category: {_q(category)}, scope: {scope}{source_turn}, "
                f"created_at: {self.clock.lit(created)}, updated_at: {self.clock.lit(updated)} }}"
            )
            # The attributes of one entity: later values of a key supersede earlier ones.
            keys = _ATTRIBUTE_KEYS[kind]
            n = counts[i]
            times = sorted(self.after(rng, created + _SECOND) for _ in range(n))
            rows: list[_Attribute] = []
            latest: dict[str, int] = {}
            for j in range(n):
                attribute_no += 1
                key, key_category = keys[j % len(keys)]
                row = _Attribute(
                    id=f"attribute:a{attribute_no:06d}",
                    key=key,
                    value=self.attribute_value(rng, key, name),
                    category=key_category if rng.random() < 0.85 else rng.choice(MEMORY_CATEGORIES),
                    scope=scope if rng.random() < 0.7 else self.scope(rng),
                    created=times[j],
                    valid_from=times[j] if rng.random() < 0.5 else None,
                    source=self.source_turn(rng, 0.6)[0],
                )
                previous = latest.get(key)
                if previous is not None:
                    # a newer value of the key: the old one ends where this one starts
                    rows[previous].valid_until = times[j]
                    row.supersedes = rows[previous].id
                    row.valid_from = times[j]
                elif attribute_no % 20 == 4 or rng.random() < 0.04:
                    row.valid_until = self.after(rng, times[j])  # expired, not replaced
                elif attribute_no % 20 == 8 or rng.random() < 0.06:
                    row.valid_until = self.clock.now_us + rng.randint(1, 180) * _DAY
                latest[key] = j
                rows.append(row)
            for row in rows:
                extra = ""
                if row.supersedes:
                    extra += f", supersedes: {row.supersedes}"
                if row.valid_from is not None:
                    extra += f", valid_from: {self.clock.lit(row.valid_from)}"
                if row.valid_until is not None:
                    extra += f", valid_until: {self.clock.lit(row.valid_until)}"
                attributes.add(
                    f"{{ id: {row.id}, entity: {entity_id}, key: {_q(row.key)}, "
                    f"value: {_q(row.value)}, memory_category: {_q(row.category)}, "
                    f"scope: {row.scope}{row.source}{extra}, "
                    f"created_at: {self.clock.lit(row.created)} }}"
                )
        entities.close()
        attributes.close()

        relations = target.writer("relates_to", relation=True)
        rng = self.rng("relation rows")
        for r in range(self.n_relations):
            a = rng.randrange(self.n_entities)
            b = (a + 1 + rng.randrange(self.n_entities - 1)) % self.n_entities
            kind_a, kind_b = self.entity(a)[0], self.entity(b)[0]
            label = rng.choice(_LABELS.get((kind_a, kind_b), ("related_to",)))
            created = self.after(rng, max(self.entity_created[a], self.entity_created[b]))
            source, _ = self.source_turn(rng, 0.5)
            extra = ""
            if rng.random() < 0.4:
                extra += f", valid_from: {self.clock.lit(created)}"
            if r % 12 == 5 or rng.random() < 0.05:
                extra += f", valid_until: {self.clock.lit(self.after(rng, created))}"
            elif rng.random() < 0.05:
                extra += f", valid_until: {self.clock.lit(self.clock.now_us + rng.randint(1, 365) * _DAY)}"
            relations.add(
                f"{{ id: relates_to:r{r + 1:06d}, in: {self.entity_id(a)}, out: {self.entity_id(b)}, "
                f"label: {_q(label)}, memory_category: {_q(rng.choice(MEMORY_CATEGORIES))}, "
                f"scope: {self.scope(rng)}{source}{extra}, created_at: {self.clock.lit(created)} }}"
            )
        relations.close()

    def write_instructions(self) -> None:
        instructions = self.out.writer("instruction")
        rng = self.rng("instruction rows")
        for n in range(self.n_instructions):
            label, description = _INSTRUCTIONS[n % len(_INSTRUCTIONS)]
            if n >= len(_INSTRUCTIONS):
                label = f"{label}-{n // len(_INSTRUCTIONS) + 1}"
                description = f"{description} (variant for {rng.choice(_AGENTS)})"
            source, at = self.source_turn(rng, 0.4)
            created = at + 3 * _SECOND if at is not None else self.clock.ago(_age(rng))
            instructions.add(
                f"{{ id: instruction:i{n + 1:04d}, label: {_q(label)}, "
                f"description: {_q(description)}, active: {str(rng.random() < 0.85).lower()}, "
                f"scope: {self.scope(rng)}{source}, created_at: {self.clock.lit(created)} }}"
            )
        instructions.close()

        uncertainties = self.out.writer("uncertainty")
        rng = self.rng("uncertainty rows")
        for n in range(self.n_uncertainties):
            kind, _, name = self.entity(rng.randrange(self.n_entities))
            key = rng.choice(_ATTRIBUTE_KEYS[kind])[0].replace("_", " ")
            source, at = self.source_turn(rng, 0.7)
            created = at + 3 * _SECOND if at is not None else self.clock.ago(_age(rng))
            uncertainties.add(
                f"{{ id: uncertainty:u{n + 1:04d}, about: {_q(f'{name} ({kind}): {key}')}, "
                f"reason: {_q(rng.choice(_UNCERTAIN_REASONS))}, scope: {self.scope(rng)}{source}, "
                f"resolved: {str(rng.random() < 0.3).lower()}, created_at: {self.clock.lit(created)} }}"
            )
        uncertainties.close()

    def write_traces(self) -> None:
        traces = self.out.writer("decision_trace")
        rng = self.rng("trace rows")
        for n in range(self.n_traces):
            action = rng.choice(("ADD", "ADD", "UPDATE", "SUPERSEDE", "DELETE", "NOOP"))
            roll = rng.random()
            if roll < 0.6:
                target = f"attribute:a{rng.randrange(self.n_attributes) + 1:06d}"
            elif roll < 0.85:
                target = self.entity_id(rng.randrange(self.n_entities))
            else:
                target = f"relates_to:r{rng.randrange(self.n_relations) + 1:06d}"
            session, seq = self.random_turn(rng)
            at = self.turn_time(session, seq) + rng.randint(2, 30) * _SECOND
            candidates = ", ".join(
                f"{{ score: {_float(rng.random())}, text: {_q(rng.choice(_KEYWORDS).lower())} }}"
                for _ in range(rng.randint(0, 3))
            )
            traces.add(
                f"{{ id: decision_trace:x{n + 1:06d}, action: {_q(action)}, target: {target}, "
                f"turn: {self.turn_id(session, seq)}, "
                f"reason: {_q(rng.choice(('new fact stated by the user', 'contradicts a newer statement', 'duplicate of an existing fact', 'low confidence', 'explicit correction')))}, "
                f"model: {_q(rng.choice(('gpt-4o-mini', 'claude-3-5-haiku', 'llama-3.1-70b')))}, "
                f"confidence: {_float(0.3 + 0.7 * rng.random())}, latency_ms: {rng.randint(80, 4000)}, "
                f"candidates: [{candidates}], created_at: {self.clock.lit(at)} }}"
            )
        traces.close()


# -- control plane ------------------------------------------------------------------------


def _write_control_plane(target: _Target, plan: SeedPlan, contexts: list[ContextInfo]) -> None:
    clock = _Clock(plan.now)
    rng = _rng(plan.seed, "control plane")
    target.select()
    target.apply_schema(metadata_schema(), "control-plane schema")

    rows = target.writer("context")
    created: dict[str, int] = {}
    for i, info in enumerate(contexts):
        _, org, _ = _context_names(i)
        at = clock.ago(_MAX_AGE + _DAY * (len(contexts) - i) + rng.randint(0, 3600) * _SECOND)
        created[info.context_id] = at
        config = (
            f"{{ default_scope: {_q(f'org/{org}')}, embedding_model: 'text-embedding-3-small', "
            f"embedding_width: {plan.embedding_width}, extraction_model: 'gpt-4o-mini', "
            f"max_document_mb: {rng.choice((25, 50, 100))} }}"
        )
        blocked = "true" if info.context_id.endswith("-dev") else "false"
        rows.add(
            f"{{ id: {_rid('context', info.context_id)}, namespace: {_q(info.namespace)}, "
            f"database: {_q(info.database)}, config: {config}, enforcement_blocked: {blocked}, "
            f"created_at: {clock.lit(at)} }}"
        )
    rows.close()

    keys = target.writer("api_key")
    for n, name in enumerate(("ops-admin", "ci-deploy", "backup-operator")):
        keys.add(
            f"{{ id: api_key:k{n + 1:03d}, name: {_q(name)}, "
            f"hash: {_q(_argon2_like(plan.seed, 'api_key', name))}, "
            f"created_at: {clock.lit(clock.ago(_age(rng)))} }}"
        )
    keys.close()

    context_keys = target.writer("context_api_key")
    usage = target.writer("context_api_key_usage")
    key_no = usage_no = 0
    for i, info in enumerate(contexts):
        _, org, _ = _context_names(i)
        context = _rid("context", info.context_id)
        specs = (
            (
                "web-widget",
                None,
                "{ actions: ['read', 'write'], scopes: ['org/" + org + "'] }",
                False,
                None,
            ),
            ("backend", "service/backend", "{ actions: ['read', 'write', 'admin'] }", True, None),
            (
                "support-bot",
                "agent/support-bot",
                "{ actions: ['read', 'write'], scopes: ['org/" + org + "', 'agent/support-bot'] }",
                True,
                None,
            ),
            ("analytics-readonly", None, "{ actions: ['read'] }", False, -30),
        )
        for name, principal, grants, strict, valid_days in specs:
            key_no += 1
            key_id = f"context_api_key:ck{key_no:04d}"
            at = created[info.context_id] + rng.randint(1, 30) * _DAY
            fields = [
                f"id: {key_id}",
                f"context: {context}",
                f"name: {_q(name)}",
                f"hash: {_q(_argon2_like(plan.seed, info.context_id, name))}",
                f"grants: {grants}",
                f"strict: {str(strict).lower()}",
                f"created_at: {clock.lit(at)}",
            ]
            if principal:
                fields.append(f"principal_id: {_q(principal)}")
            if valid_days is not None:
                fields.append(f"valid_until: {clock.lit(clock.now_us + valid_days * _DAY)}")
            uses = sorted(
                clock.ago(rng.randint(60, 30 * 86_400) * _SECOND) for _ in range(rng.randint(0, 4))
            )
            if valid_days is not None:
                uses = [u - 40 * _DAY for u in uses]
            if uses:
                fields.append(f"last_used_at: {clock.lit(uses[-1])}")
            context_keys.add("{ " + ", ".join(fields) + " }")
            for used in uses:
                usage_no += 1
                usage.add(
                    f"{{ id: context_api_key_usage:u{usage_no:06d}, key: {key_id}, "
                    f"context: {context}, used_at: {clock.lit(used)} }}"
                )
    context_keys.close()
    usage.close()


def _write_jobqueue(target: _Target, plan: SeedPlan, contexts: list[ContextInfo]) -> None:
    clock = _Clock(plan.now)
    target.select()
    target.apply_schema(JOB_SCHEMA, "job-queue schema")
    jobs = target.writer("job")
    job_no = 0
    job_status = {
        "ready": "done",
        "embedding": "running",
        "keywording": "running",
        "queued": "queued",
        "failed": "failed",
    }
    for i, info in enumerate(contexts):
        rng = _rng(plan.seed, info.context_id, "jobs")
        statuses = _ContextSeeder(plan, i, None).doc_status
        wanted = list(range(min(len(statuses), 3)))
        wanted += [d for d, st in enumerate(statuses) if st != "ready" and d >= 3][:3]
        for d in wanted:
            job_no += 1
            status = job_status[statuses[d]]
            at = clock.ago(rng.randint(60, 7 * 86_400) * _SECOND)
            error = ", error: 'embedding provider timeout'" if status == "failed" else ""
            attempts = 0 if status == "queued" else rng.randint(1, 3)
            jobs.add(
                f"{{ id: job:j{job_no:05d}, kind: 'ingest_document', context: {_q(info.context_id)}, "
                f"payload: {{ document: {_q(f'document:d{d + 1:04d}')}, namespace: {_q(info.namespace)}, "
                f"database: {_q(info.database)} }}, status: {_q(status)}, attempts: {attempts}{error}, "
                f"priority: {i % 3}, created_at: {clock.lit(at)}, "
                f"updated_at: {clock.lit(at + rng.randint(1, 600) * _SECOND)} }}"
            )
    jobs.close()


# -- entry point --------------------------------------------------------------------------


def _check_empty(conn: SurrealConnection, namespace: str, database: str) -> None:
    if not conn.database_exists(namespace, database):
        return
    conn.use(namespace, database)
    info = conn.run_one("INFO FOR DB") or {}
    tables = sorted(info.get("tables") or {})
    if tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise UsageError(
            f"cannot seed {namespace}/{database} on {conn.display_url}: it already has tables "
            f"({shown}); seed into an empty SurrealDB"
        )


def planned_contexts(plan: SeedPlan) -> list[ContextInfo]:
    return [context_info(i) for i in range(plan.contexts)]


def check_document_store(store: Store) -> None:
    """Write and delete a small probe object, so that a missing bucket, denied access or an
    unwritable directory is found before the SurrealDB is seeded, not after (a half-seeded
    instance cannot be seeded again). Any failure is a UsageError naming the store by its
    setting (bad input: the store is the operator's choice, and nothing is written yet)."""
    key = f"spectron-seed-probe-{secrets.token_hex(6)}"
    try:
        store.put_bytes(key, b"probe: written and deleted by spectron-backup seed\n")
        store.delete(key)
    except SpectronBackupError as exc:
        raise UsageError(
            f"{store.setting} {store.url} cannot be written, so nothing was seeded: {exc}"
        ) from exc


def seed_instance(
    conn: SurrealConnection,
    plan: SeedPlan,
    documents: Store | DocumentSink | None = None,
    progress: Progress | None = None,
) -> SeedResult:
    """Write the Spectron instance the plan describes into an empty SurrealDB.

    `documents` receives every document's original bytes under its storage key, as the
    document bucket would: a Store (probed with `check_document_store` after the databases
    are found empty and before anything is written) or a sink `(storage_key, bytes)`. Raises
    UsageError when a target database already has tables or the store cannot be written, and
    OperationFailed naming the database and table when a statement fails.
    """
    contexts = planned_contexts(plan)
    targets = [(CONTROL_NAMESPACE, METADATA_DATABASE)]
    if plan.jobqueue:
        targets.append((CONTROL_NAMESPACE, JOBQUEUE_DATABASE))
    targets += [(info.namespace, info.database) for info in contexts]
    for namespace, database in targets:
        _check_empty(conn, namespace, database)
    if isinstance(documents, Store):
        check_document_store(documents)
        documents = documents.put_bytes

    result = SeedResult(contexts=contexts)
    metadata = _Target(conn, CONTROL_NAMESPACE, METADATA_DATABASE)
    _write_control_plane(metadata, plan, contexts)
    result.records[metadata.where] = metadata.counts
    if progress:
        progress(f"control plane {metadata.where} written")
    if plan.jobqueue:
        jobqueue = _Target(conn, CONTROL_NAMESPACE, JOBQUEUE_DATABASE)
        _write_jobqueue(jobqueue, plan, contexts)
        result.records[jobqueue.where] = jobqueue.counts
        if progress:
            progress(f"job queue {jobqueue.where} written")
    for index, info in enumerate(contexts):
        target = _Target(conn, info.namespace, info.database)
        result.documents += _ContextSeeder(plan, index, target).run(documents, progress)
        result.records[target.where] = target.counts
    return result
