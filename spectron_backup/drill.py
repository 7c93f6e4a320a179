"""The restore drill (design section 6), without Prefect: choose a backup, restore every
database of it into a scratch SurrealDB, validate, and describe the result as a drill record.

manifest = choose_backup(repo, "latest", 30, None, now, random.Random())
report = run_drill(store, manifest, scratch_url=None, documents=docs, keep_scratch=False)
write_drill_record(repo, report)        # backups/<id>/drills/<YYYYMMDDTHHMMSSZ>.json

The scratch store is a temporary embedded store (`surrealkv://` in a new temporary directory,
removed afterwards) or, with `scratch_url`, a SurrealDB server into which every database is
restored under a uniquely prefixed namespace (`drill_<6 hex>_<ns>`), removed afterwards. The
scratch is cleaned up also when the drill fails or raises, unless `keep_scratch`. The backup
is leased (spectron_backup.leases) from the start of its restore until its validation ends,
so that a prune running meanwhile leaves it whole; a lease that cannot be written is one of
the report's `warnings`, never a failure.

A problem with the backup itself (an object that is missing, cannot be read, fails its
sha256 or does not import) is a failed check of the report, never an exception: a drill
exists to find such problems. A backup that cannot be found is a `DrillFailed`.
"""

from __future__ import annotations

import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from spectron_backup.checks import CheckResult
from spectron_backup.config import DocumentsConfig, DrillConfig
from spectron_backup.encryption import AgeAuthenticationFailed, Identity, IdentityMismatch
from spectron_backup.errors import OperationFailed, SpectronBackupError, UsageError
from spectron_backup.keyed_hashes import PLAIN, HashKey, HashKeyRefused
from spectron_backup.leases import BackupGone, hold_lease
from spectron_backup.manifest import BACKUP_ID, DatabaseEntry, Manifest, backup_time, rfc3339
from spectron_backup.repository import BackupEntry, Repository, newest_backup, why_not_latest
from spectron_backup.restore import ChecksumMismatch, identity_problem, restore_database
from spectron_backup.stores import open_store
from spectron_backup.stores.base import ObjectNotFound, Store
from spectron_backup.surreal import (
    AccessRefused,
    Credentials,
    SurrealConnection,
    connect,
    surreal_identifier,
)
from spectron_backup.urls import redact_url

RECORD_FORMAT = 1
#: prefix of the namespaces a drill creates on a scratch server (and of its temporary dirs)
SCRATCH_PREFIX = "drill_"
TEMP_PREFIX = "spectron-drill-"
SELECTIONS = ("latest", "random")
#: Where a scratch server's secret belongs (never in its URL).
SCRATCH_SECRETS = (
    "drill.scratch_username with SPECTRON_BACKUP__DRILL__SCRATCH_PASSWORD (or "
    "SPECTRON_BACKUP__DRILL__SCRATCH_TOKEN)"
)


class DrillFailed(OperationFailed):
    """The drill ran and found a problem, or there was no backup to drill (exit status 1)."""

    def __init__(
        self, backup_id: str | None, failures: list[str], record: dict[str, Any] | None = None
    ) -> None:
        self.backup_id = backup_id
        self.failures = list(failures)
        #: the drill record, when the drill ran
        self.record = record
        shown = "; ".join(self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        what = f"restore drill of backup {backup_id}" if backup_id else "restore drill"
        super().__init__(f"{what} failed: {shown}{more}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, whatever Prefect does with it
        return (type(self), (self.backup_id, self.failures, self.record))


def scratch_credentials(drill: DrillConfig) -> Credentials:
    """How to sign in to a scratch server (`drill.scratch_*`); unused for the embedded one."""
    return Credentials(
        username=drill.scratch_username,
        password=drill.scratch_password,
        token=drill.scratch_token,
        auth_namespace=drill.scratch_auth_namespace,
    )


def open_documents_store(documents: DocumentsConfig | None) -> Store | None:
    """The store of Spectron's document bucket (the `documents` section), or None."""
    if documents is None:
        return None
    # S3 errors then name the `documents` setting, not the target
    naming = {"setting": "documents"} if documents.url.startswith("s3://") else {}
    return open_store(
        documents.url, endpoint_url=documents.endpoint_url, region=documents.region, **naming
    )


# -- choosing the backup ------------------------------------------------------------------


def choose_backup_request(which: str | None) -> str | None:
    """`which` if it is a drill request (None, latest, random or a well-formed backup id),
    else a UsageError: a typo is bad usage, a well-formed id that does not exist a failure."""
    if which in (None, *SELECTIONS):
        return which
    if not BACKUP_ID.fullmatch(which):
        raise UsageError(
            f"{which!r} is not a backup to drill: use latest, random or a backup id "
            "(YYYYMMDDTHHMMSSZ-hex, see `spectron-backup list`)"
        )
    try:
        backup_time(which)
    except ValueError:
        raise UsageError(f"{which!r} is not a backup id: its time is not a valid date") from None
    return which


def choose_backup(
    repo: Repository,
    selection: str,
    window_days: int,
    which: str | None,
    now: datetime,
    rng: random.Random,
) -> Manifest:
    """The manifest of the backup to drill.

    `which` is `latest`, `random` or a backup id; None means `selection` (the configuration's
    `drill.selection`). `latest` is the newest backup with a manifest; `random` one started
    within `window_days` before `now`. A backup that does not exist, is incomplete or whose
    manifest cannot be read (or is another backup's) is a DrillFailed, and so is a `latest`
    dated after `now` (a skewed clock: it may not be the newest); a malformed request a
    UsageError. Missing or short objects fail their own databases' checks.
    """
    which = which or selection
    where = repo.store.url
    entries = repo.backups()
    if which == "latest":
        entry = newest_backup(entries)
        if entry is None:
            raise DrillFailed(None, [f"there is no complete backup in {where}"])
        trouble = why_not_latest(entry, now, whole=False)
        if trouble is not None:  # the newest backup is the one a restore would want
            raise DrillFailed(entry.backup_id, [trouble])
        return entry.manifest  # type: ignore[return-value]
    if which == "random":
        since = now - timedelta(days=window_days)
        candidates = [b for b in entries if b.has_manifest and b.time >= since]
        if not candidates:
            raise DrillFailed(
                None, [f"there is no complete backup in {where} from the last {window_days} days"]
            )
        return _drillable(rng.choice(candidates))
    choose_backup_request(which)
    for entry in entries:
        if entry.backup_id == which:
            return _drillable(entry)
    raise DrillFailed(which, [f"backup {which} does not exist in {where}"])


def _drillable(entry: BackupEntry) -> Manifest:
    """The manifest of a chosen backup, or a DrillFailed saying why it cannot be restored."""
    if entry.problem:
        raise DrillFailed(entry.backup_id, [entry.problem])
    if entry.manifest is None:
        raise DrillFailed(
            entry.backup_id,
            [f"backup {entry.backup_id} is incomplete (no manifest): it cannot be restored"],
        )
    return entry.manifest  # missing or short objects fail their databases' checks


# -- the report -----------------------------------------------------------------------------


@dataclass
class DatabaseDrill:
    ns: str
    db: str
    #: the namespace it was restored into (prefixed on a scratch server)
    into: str
    records: int = 0
    download_seconds: float = 0.0
    import_seconds: float = 0.0
    validation_seconds: float = 0.0
    passed: bool = False

    @property
    def name(self) -> str:
        return f"{self.ns}/{self.db}"

    @property
    def restore_seconds(self) -> float:
        return self.download_seconds + self.import_seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "ns": self.ns,
            "db": self.db,
            "into": f"{self.into}/{self.db}",
            "records": self.records,
            "restore_seconds": round(self.restore_seconds, 3),
            "download_seconds": round(self.download_seconds, 3),
            "import_seconds": round(self.import_seconds, 3),
            "validation_seconds": round(self.validation_seconds, 3),
            "passed": self.passed,
        }


@dataclass
class DrillReport:
    backup_id: str
    backup_started_at: datetime
    started_at: datetime
    finished_at: datetime
    #: where the drill restored to, for people: "temporary embedded store" or a redacted URL
    scratch: str
    databases: list[DatabaseDrill] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    #: where the scratch store was left when kept for debugging
    kept_scratch: str | None = None
    #: what did not stop the drill but should be known: its lease could not be written...
    warnings: list[str] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.failed_checks

    @property
    def failures(self) -> list[str]:
        return [str(c) for c in self.failed_checks]

    @property
    def backup_age_seconds(self) -> float:
        """RPO evidence: how old the restored state was when the drill started."""
        return (self.started_at - self.backup_started_at).total_seconds()

    @property
    def restore_seconds(self) -> float:
        """RTO evidence: download, verification and import of every database."""
        return sum(d.restore_seconds for d in self.databases)

    @property
    def download_seconds(self) -> float:
        return sum(d.download_seconds for d in self.databases)

    @property
    def validation_seconds(self) -> float:
        return sum(d.validation_seconds for d in self.databases)

    @property
    def records(self) -> int:
        return sum(d.records for d in self.databases)

    def to_record(self) -> dict[str, Any]:
        """The drill record, `backups/<id>/drills/<timestamp>.json` (format 1). `list` and
        retention read `passed` and `finished_at`: never rename those."""
        return {
            "format": RECORD_FORMAT,
            "backup_id": self.backup_id,
            "passed": self.passed,
            "started_at": rfc3339(self.started_at),
            "finished_at": rfc3339(self.finished_at),
            "backup_started_at": rfc3339(self.backup_started_at),
            "backup_age_seconds": round(self.backup_age_seconds, 3),
            "restore_seconds": round(self.restore_seconds, 3),
            "validation_seconds": round(self.validation_seconds, 3),
            "download_seconds": round(self.download_seconds, 3),
            "seconds": round((self.finished_at - self.started_at).total_seconds(), 3),
            "records": self.records,
            "scratch": self.scratch,
            "kept_scratch": self.kept_scratch,
            "databases": [d.to_json() for d in self.databases],
            "checks": [c.to_json() for c in self.checks],
            "failures": self.failures,
            "warnings": list(self.warnings),
        }


def record_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_drill_record(repo: Repository, report: DrillReport) -> str:
    """Write the drill record next to the backup; returns its key. A second drill in the
    same second gets a `_02`, `_03`... suffix, which sorts after the first (`_` > `.`), so
    that the last key is always the last drill."""
    stamp = record_timestamp(report.finished_at)
    candidate, n = stamp, 1
    while repo.store.exists(f"backups/{report.backup_id}/drills/{candidate}.json"):
        n += 1
        candidate = f"{stamp}_{n:02d}"
    return repo.write_drill(report.backup_id, candidate, report.to_record())


# -- running it -----------------------------------------------------------------------------


def validate(
    conn: SurrealConnection,
    entry: DatabaseEntry,
    *,
    namespace: str,
    database: str,
    documents: Store | None,
    hash_key: HashKey = PLAIN,
) -> list[CheckResult]:
    """The checks of design section 6 on one restored database (spectron_backup.validation)."""
    from spectron_backup.validation import validate_restored

    return validate_restored(
        conn, entry, namespace=namespace, database=database, documents=documents, hash_key=hash_key
    )


def _failed(entry: DatabaseEntry, check: str, detail: str) -> CheckResult:
    return CheckResult(f"{entry.ns}/{entry.db}", None, check, False, detail)


#: What a backup object (or its manifest entry) can fail on before anything is imported, and
#: the check each fails; the first that matches (HashKeyRefused is an AgeAuthenticationFailed).
_REFUSAL_CHECKS: tuple[tuple[type[Exception], str], ...] = (
    (ChecksumMismatch, "object_sha256_matches"),
    (HashKeyRefused, "hash_key_opens"),
    (IdentityMismatch, "object_decrypts"),
    (AgeAuthenticationFailed, "object_decrypts"),
)
_REFUSED_BACKUP = tuple(kind for kind, _check in _REFUSAL_CHECKS)


def _refusal_check(exc: Exception) -> str:
    return next(check for kind, check in _REFUSAL_CHECKS if isinstance(exc, kind))


def _drill_database(
    conn: SurrealConnection,
    store: Store,
    entry: DatabaseEntry,
    namespace: str,
    documents: Store | None,
    identities: Sequence[Identity] = (),
) -> tuple[DatabaseDrill, list[CheckResult]]:
    result = DatabaseDrill(entry.ns, entry.db, namespace, records=entry.records)
    checks: list[CheckResult] = []
    name = f"{entry.ns}/{entry.db}"
    started = time.perf_counter()
    try:
        restored = restore_database(
            store, entry, conn, namespace=namespace, verify=False, identities=identities
        )
    except _REFUSED_BACKUP as exc:
        result.download_seconds = time.perf_counter() - started
        detail = str(exc).removeprefix(f"{name}: ")
        return result, [_failed(entry, _refusal_check(exc), detail)]
    except ObjectNotFound:
        result.download_seconds = time.perf_counter() - started
        return result, [
            _failed(entry, "object_readable", f"the backup object {entry.key} does not exist")
        ]
    except AccessRefused:
        # the scratch server refused us (permissions): a problem of the drill's configuration,
        # not of the backup, so not a failed check of it
        raise
    except Exception as exc:  # unreadable object, bad compression, lost scratch...
        result.download_seconds = time.perf_counter() - started
        return result, [
            _failed(entry, "restore_succeeded", f"{type(exc).__name__}: {_one_line(exc)}")
        ]
    result.download_seconds = restored.download_seconds
    result.import_seconds = restored.import_seconds
    checks.append(
        CheckResult(
            name,
            None,
            "object_sha256_matches",
            True,
            f"the stored object's sha256 equals the manifest's ({entry.sha256[:12]}...)",
        )
    )
    if entry.encrypted:
        checks.append(
            CheckResult(
                name,
                None,
                "object_decrypts",
                True,
                f"decrypted with the configured identity (age, to {len(entry.recipients)} "
                "recipient(s)); every chunk authenticated",
            )
        )
    failures = restored.imported.failures
    checks.append(
        CheckResult(
            name,
            None,
            "import_succeeded",
            not failures,
            f"{restored.imported.statements} statements imported"
            if not failures
            else f"{len(failures)} of {restored.imported.statements} statements failed; first: {failures[0]}",
        )
    )
    started = time.perf_counter()
    try:
        conn.use(namespace, entry.db)
        checks += validate(
            conn,
            entry,
            namespace=namespace,
            database=entry.db,
            documents=documents,
            hash_key=restored.hash_key,
        )
    except ImportError:
        raise  # a broken installation, not a finding about the backup
    except Exception as exc:
        checks.append(_failed(entry, "validation_ran", f"{type(exc).__name__}: {_one_line(exc)}"))
    result.validation_seconds = time.perf_counter() - started
    return result, checks


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500]


def run_drill(
    store: Store,
    manifest: Manifest,
    *,
    scratch_url: str | None = None,
    documents: Store | None = None,
    keep_scratch: bool = False,
    now: datetime | None = None,
    scratch_root: str | None = None,
    identities: Sequence[Identity] = (),
    scratch_credentials: Credentials | None = None,
) -> DrillReport:
    """Restore every database of `manifest` into a scratch SurrealDB, validate each, and
    clean the scratch up (also on failure) unless `keep_scratch`.

    `scratch_root` is where the temporary embedded store goes (default: the system's
    temporary directory). `identities` decrypt an encrypted backup; when they cannot (none
    given, or none of the backup's recipients) the drill fails with that reason, naming
    the recipients, and restores nothing. `scratch_credentials` sign in to a scratch server
    (a refusal is a UsageError naming the server, never the secret). A backup that a prune
    deleted since it was chosen is a DrillFailed.
    """
    started_at = now or datetime.now(UTC)
    report = DrillReport(
        backup_id=manifest.backup_id,
        backup_started_at=manifest.started,
        started_at=started_at,
        finished_at=started_at,
        scratch="temporary embedded store" if scratch_url is None else redact_url(scratch_url),
    )
    clock = time.perf_counter()
    if not manifest.databases:
        report.checks.append(
            CheckResult("-", None, "backup_has_databases", False, "the manifest lists no database")
        )
    problem = identity_problem(manifest.backup_id, manifest.databases, identities)
    if problem:
        report.checks.append(CheckResult("-", None, "identity_opens_backup", False, problem))
        report.databases = [
            DatabaseDrill(e.ns, e.db, e.ns, records=e.records) for e in manifest.databases
        ]
        report.finished_at = started_at + timedelta(seconds=time.perf_counter() - clock)
        return report
    # Leased until its validation ends, so that a prune running meanwhile leaves it whole.
    try:
        with hold_lease(Repository(store), manifest.backup_id, "drill") as lease:
            report.warnings = lease.warnings  # the refresher may add to them meanwhile
            _restore_and_validate(
                report,
                store,
                manifest,
                scratch_url=scratch_url,
                documents=documents,
                keep_scratch=keep_scratch,
                scratch_root=scratch_root,
                identities=identities,
                scratch_credentials=scratch_credentials,
            )
    except BackupGone as exc:  # pruned between its choice and the lease
        raise DrillFailed(manifest.backup_id, [str(exc)]) from None
    # Wall time, measured on a monotonic clock, from the chosen start.
    report.finished_at = started_at + timedelta(seconds=time.perf_counter() - clock)
    return report


def _restore_and_validate(
    report: DrillReport,
    store: Store,
    manifest: Manifest,
    *,
    scratch_url: str | None,
    documents: Store | None,
    keep_scratch: bool,
    scratch_root: str | None,
    identities: Sequence[Identity],
    scratch_credentials: Credentials | None,
) -> None:
    """`run_drill`'s restore of every database into the scratch and its validation, into
    `report`; the scratch is cleaned up (also on failure) unless `keep_scratch`."""
    from spectron_backup.validation import import_great_expectations_meanwhile

    import_great_expectations_meanwhile()  # the validation's, while downloads and imports run
    if scratch_url is None:
        directory = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=scratch_root)
        url, prefix = f"surrealkv://{directory}", ""
    else:
        directory = None
        url, prefix = scratch_url, f"{SCRATCH_PREFIX}{secrets.token_hex(3)}_"
    created: list[str] = []
    conn: SurrealConnection | None = None
    failure: BaseException | None = None
    try:
        conn = connect(url, scratch_credentials if scratch_url is not None else None)
        drilled: dict[int, tuple[DatabaseDrill, list[CheckResult]]] = {}
        # The largest database first: its restore is the longest wait, which the import of
        # Great Expectations overlaps (a small first database would wait for it instead).
        # The report keeps the manifest's order.
        for index in sorted(
            range(len(manifest.databases)), key=lambda i: -manifest.databases[i].records
        ):
            entry = manifest.databases[index]
            namespace = prefix + entry.ns
            if namespace not in created:
                created.append(namespace)
            result, checks = _drill_database(conn, store, entry, namespace, documents, identities)
            result.passed = all(c.passed for c in checks)
            drilled[index] = (result, checks)
        for index in sorted(drilled):
            result, checks = drilled[index]
            report.databases.append(result)
            report.checks += checks
    except BaseException as exc:
        failure = exc
        raise
    finally:
        if keep_scratch:
            report.kept_scratch = (
                directory
                if directory is not None
                else ", ".join(f"{redact_url(url)} namespace {ns}" for ns in created)
            )
            if conn is not None:
                conn.close()
        else:
            try:
                _clean_up(conn, directory, created)
            except OperationFailed as cleanup:
                if failure is None:
                    raise
                # the cause of the drill's failure stays the error; the clean-up's follows it
                failure.add_note(str(cleanup))


def _clean_up(conn: SurrealConnection | None, directory: str | None, namespaces: list[str]) -> None:
    """Remove what the drill created; every step is attempted even if one fails."""
    problems = []
    if conn is not None:
        if directory is None:
            for namespace in namespaces:
                try:
                    conn.run(f"REMOVE NAMESPACE IF EXISTS {surreal_identifier(namespace)}")
                except SpectronBackupError as exc:
                    problems.append(f"namespace {namespace}: {exc}")
        try:
            conn.close()
        except Exception as exc:
            problems.append(f"closing the scratch connection: {exc}")
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
    if problems:
        raise OperationFailed("the drill's scratch could not be cleaned up: " + "; ".join(problems))
