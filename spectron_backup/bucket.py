"""The document bucket guard (design section 8): Spectron's document bucket keeps its versions.

`check` reports what protects the documents: versioning, a lifecycle rule expiring noncurrent
versions after `documents.noncurrent_days`, a rule aborting incomplete multipart uploads, and
cross-region replication. `plan` / `apply` (`ensure`) turn versioning on and put the guard's
own lifecycle rule (id `spectron-backup-guard`) into the bucket's lifecycle configuration,
keeping every other rule exactly as it was read; replication is configured only when
`documents.replication` names a destination and a role. `undelete` removes the delete marker
hiding a key's latest version; `restore` copies the version current at a time over the key.

S3 replaces a lifecycle (or replication) configuration as a whole, and has no conditional
write for it: ensure reads it, merges, reads it again right before writing and refuses if it
changed in between, then checks that every other rule is still there afterwards.

Times: S3 reports LastModified to the second, so "the version current at T" is the newest
version stamped at or before T, versions of the same second ordered as S3 lists them (newest
first). A version and a delete marker stamped in the same second cannot be ordered: restore
refuses and asks for `--version-id`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from spectron_backup.config import DocumentsConfig
from spectron_backup.errors import OperationFailed, UsageError
from spectron_backup.stores import S3Store, open_store

GUARD_RULE_ID = "spectron-backup-guard"

_NO_LIFECYCLE = ("NoSuchLifecycleConfiguration",)
_NO_REPLICATION = ("ReplicationConfigurationNotFoundError",)
_CURRENT_ACTIONS = ("Expiration", "Transitions", "NoncurrentVersionTransitions")


def open_document_bucket(documents: DocumentsConfig | None) -> DocumentBucket:
    """The guard of the configuration's `documents` bucket; UsageError when there is none or it
    is not on S3 (versions and lifecycle rules exist only there)."""
    if documents is None:
        raise UsageError(
            "no `documents` section in the configuration: set documents.url to the "
            "s3://bucket or s3://bucket/prefix holding Spectron's documents"
        )
    if not documents.url.startswith("s3://"):
        raise UsageError(
            f"the bucket commands need an S3 document store, but documents.url is "
            f"{documents.url}: versioning, lifecycle rules and undelete exist only on S3"
        )
    store = open_store(
        documents.url,
        endpoint_url=documents.endpoint_url,
        region=documents.region,
        setting="documents",
    )
    assert isinstance(store, S3Store)
    return DocumentBucket(store, documents)


# -- reports ------------------------------------------------------------------------------------


class GuardFailed(OperationFailed):
    """The bucket still lacks something the guard requires (exit status 1)."""

    def __init__(self, bucket: str, failures: list[str]) -> None:
        self.bucket = bucket
        self.failures = list(failures)
        super().__init__(
            f"document bucket {bucket} is not guarded: {'; '.join(self.failures)} "
            "(`spectron-backup bucket ensure --dry-run` shows what ensure would change, or why "
            "it would not; documents.guard.ensure lets the daily flow ensure)"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, whatever Prefect does with it
        return (type(self), (self.bucket, self.failures))


@dataclass(frozen=True)
class Finding:
    """One thing `check` looks at. A missing `required` one fails the check (exit 1)."""

    name: str  # versioning | noncurrent_expiration | abort_multipart | replication
    ok: bool
    required: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "required": self.required, "detail": self.detail}


@dataclass
class BucketStatus:
    """What `check` found on the bucket, with the raw configurations it read."""

    bucket: str
    prefix: str
    url: str
    versioning: str  # Enabled | Suspended | Disabled (never enabled)
    mfa_delete: str | None
    findings: list[Finding]
    warnings: list[str]
    lifecycle: dict[str, Any] | None  # GetBucketLifecycleConfiguration, without metadata
    replication: dict[str, Any] | None  # GetBucketReplication's ReplicationConfiguration

    @property
    def rules(self) -> list[dict[str, Any]]:
        return list((self.lifecycle or {}).get("Rules") or [])

    @property
    def missing(self) -> list[Finding]:
        return [f for f in self.findings if f.required and not f.ok]

    @property
    def ok(self) -> bool:
        return not self.missing

    def failure(self) -> GuardFailed | None:
        """The error of a bucket that lacks something required, or None."""
        if self.ok:
            return None
        return GuardFailed(self.bucket, [f"{f.name}: {f.detail}" for f in self.missing])

    def finding(self, name: str) -> Finding:
        return next(f for f in self.findings if f.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "url": self.url,
            "ok": self.ok,
            "versioning": self.versioning,
            "mfa_delete": self.mfa_delete,
            "findings": [f.to_json() for f in self.findings],
            "missing": [f.name for f in self.missing],
            "warnings": self.warnings,
            "lifecycle_rules": self.rules,
            "replication": self.replication,
        }


@dataclass(frozen=True)
class Change:
    """One change `ensure` makes (or, with --dry-run, would make)."""

    setting: str  # versioning | lifecycle | replication
    action: str
    detail: str
    before: Any = None
    after: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "setting": self.setting,
            "action": self.action,
            "detail": self.detail,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class Plan:
    """What `ensure` changes, made from one `check`; `apply` carries it out."""

    status: BucketStatus
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the whole configurations to write (None: left alone)
    lifecycle: dict[str, Any] | None = None
    replication: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.status.bucket,
            "changes": [c.to_json() for c in self.changes],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Version:
    """One entry of a key's history: a version or a delete marker."""

    version_id: str
    last_modified: datetime
    is_latest: bool
    delete_marker: bool
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "last_modified": _iso(self.last_modified),
            "is_latest": self.is_latest,
            "delete_marker": self.delete_marker,
            "size": self.size,
        }


@dataclass
class KeyOutcome:
    """What `undelete` or `restore` did (or would do) to one key."""

    action: str  # undelete | restore
    url: str
    key: str
    changed: bool
    dry_run: bool
    message: str
    version: Version | None = None  # the version made current (or already current)
    removed_delete_markers: list[Version] = field(default_factory=list)
    new_version_id: str | None = None  # restore: the id of the copy

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "url": self.url,
            "key": self.key,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "message": self.message,
            "version": self.version.to_json() if self.version else None,
            "removed_delete_markers": [m.to_json() for m in self.removed_delete_markers],
            "new_version_id": self.new_version_id,
        }


# -- lifecycle and replication rules ------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rule_scope(rule: dict[str, Any]) -> str | None:
    """The key prefix a lifecycle rule applies to when it applies to every object under it;
    None when a tag or object size filter narrows it."""
    if "Filter" not in rule:
        return rule.get("Prefix") or ""  # the old form: a top-level Prefix, or nothing
    selector = rule.get("Filter") or {}
    if "And" in selector:
        selector = selector["And"] or {}
    if set(selector) - {"Prefix"}:
        return None
    return selector.get("Prefix") or ""


def _rule_prefix(rule: dict[str, Any]) -> str:
    """The key prefix of a rule, whatever else narrows it (for overlap warnings)."""
    selector = rule.get("Filter")
    if selector is None:
        return rule.get("Prefix") or ""
    return (selector.get("And") or selector).get("Prefix") or ""


def _enabled(rule: dict[str, Any]) -> bool:
    return rule.get("Status") == "Enabled"


def _noncurrent_days(rule: dict[str, Any]) -> int | None:
    return (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays")


def _newer_kept(rule: dict[str, Any]) -> int | None:
    """NewerNoncurrentVersions: how many of the newest noncurrent versions the rule keeps
    whatever their age."""
    return (rule.get("NoncurrentVersionExpiration") or {}).get("NewerNoncurrentVersions")


def _retention(rule: dict[str, Any]) -> str:
    text = f"{_noncurrent_days(rule)} days"
    if _newer_kept(rule):
        text += f" (keeping the newest {_newer_kept(rule)} whatever their age)"
    return text


def _keeps_longer(rule: dict[str, Any], days: int) -> bool:
    """Whether the rule keeps some noncurrent versions longer than `days`: it expires them
    later, or keeps its newest ones whatever their age."""
    kept = _noncurrent_days(rule)
    return kept is not None and (kept > days or bool(_newer_kept(rule)))


def _abort_days(rule: dict[str, Any]) -> int | None:
    return (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation")


def _rule_name(rule: dict[str, Any]) -> str:
    return rule.get("ID") or f"(no id, prefix {_rule_prefix(rule)!r})"


def _under(prefix: str) -> str:
    return f"under {prefix!r}" if prefix else "in the whole bucket"


def _bucket_arn(bucket: str) -> str:
    return bucket if bucket.startswith("arn:") else f"arn:aws:s3:::{bucket}"


def _replication_destination(rule: dict[str, Any]) -> str:
    return _bucket_arn((rule.get("Destination") or {}).get("Bucket") or "")


# -- the guard ----------------------------------------------------------------------------------


class DocumentBucket:
    """Check, ensure, undelete and restore on the `documents` bucket (see the module doc)."""

    def __init__(self, store: S3Store, documents: DocumentsConfig) -> None:
        self.store = store
        self.documents = documents
        self.bucket = store.bucket
        self.prefix = store.prefix
        #: the key prefix the guard's rules cover: the documents' prefix, or the whole bucket
        self.scope = f"{store.prefix}/" if store.prefix else ""

    def close(self) -> None:
        self.store.close()

    # -- check ----------------------------------------------------------------------------------

    def _versioning(self) -> tuple[str, str | None]:
        response = self.store.request(
            "get_bucket_versioning", "reading the versioning status (s3:GetBucketVersioning)"
        )
        return response.get("Status") or "Disabled", response.get("MFADelete")

    def _lifecycle(self) -> dict[str, Any] | None:
        response = self.store.request(
            "get_bucket_lifecycle_configuration",
            "reading the lifecycle configuration (s3:GetLifecycleConfiguration)",
            absent=_NO_LIFECYCLE,
        )
        if response is None:
            return None
        return {k: v for k, v in response.items() if k != "ResponseMetadata"}

    def _replication(self) -> dict[str, Any] | None:
        response = self.store.request(
            "get_bucket_replication",
            "reading the replication configuration (s3:GetReplicationConfiguration)",
            absent=_NO_REPLICATION,
        )
        return None if response is None else response.get("ReplicationConfiguration")

    def _covers(self, rule: dict[str, Any]) -> bool:
        scope = rule_scope(rule)
        return _enabled(rule) and scope is not None and self.scope.startswith(scope)

    def _overlaps(self, rule: dict[str, Any]) -> bool:
        prefix = _rule_prefix(rule)
        return _enabled(rule) and (self.scope.startswith(prefix) or prefix.startswith(self.scope))

    def check(self) -> BucketStatus:
        versioning, mfa_delete = self._versioning()
        lifecycle = self._lifecycle()
        replication = self._replication()
        rules = list((lifecycle or {}).get("Rules") or [])
        days = self.documents.noncurrent_days
        blocking = self._blocking(rules, days)
        findings = [
            Finding(
                "versioning",
                versioning == "Enabled",
                True,
                {
                    "Enabled": "Enabled: deleted and overwritten documents keep their versions",
                    "Suspended": "Suspended: deletes and overwrites are permanent",
                }.get(versioning, "never enabled: deletes and overwrites are permanent"),
            ),
            self._noncurrent_finding(rules, days, blocking),
            self._abort_finding(rules, blocking),
            self._replication_finding(replication),
        ]
        return BucketStatus(
            bucket=self.bucket,
            prefix=self.prefix,
            url=self.store.url,
            versioning=versioning,
            mfa_delete=mfa_delete,
            findings=findings,
            warnings=self._warnings(rules, days),
            lifecycle=lifecycle,
            replication=replication,
        )

    def _noncurrent_finding(
        self, rules: list[dict[str, Any]], days: int, blocking: list[dict[str, Any]]
    ) -> Finding:
        """Ok when a rule covering the documents expires noncurrent versions after exactly
        `days`, or another's rule after more: it keeps them at least as long as the guard
        would. The guard's own rule counts only as configured (ensure updates it otherwise)."""
        name = "noncurrent_expiration"
        covering = [r for r in rules if self._covers(r) and _noncurrent_days(r) is not None]
        for rule in sorted(covering, key=lambda r: _noncurrent_days(r) != days):
            kept = _noncurrent_days(rule)
            assert kept is not None
            if kept == days or (kept > days and rule.get("ID") != GUARD_RULE_ID):
                return Finding(
                    name,
                    True,
                    True,
                    f"rule {_rule_name(rule)} expires noncurrent versions after {_retention(rule)}",
                )
        others = [
            f"rule {_rule_name(r)}: {_noncurrent_days(r)} days"
            for r in rules
            if self._covers(r) and _noncurrent_days(r) is not None
        ]
        detail = (
            f"no rule expires noncurrent versions after {days} days (documents.noncurrent_days)"
        )
        if others:
            detail += f"; found {', '.join(others)}"
        if blocking:
            detail += f"; {self._refusal(blocking, days)}"
        return Finding(name, False, True, detail)

    def _abort_finding(
        self, rules: list[dict[str, Any]], blocking: list[dict[str, Any]]
    ) -> Finding:
        name = "abort_multipart"
        for rule in rules:
            if self._covers(rule) and _abort_days(rule) is not None:
                return Finding(
                    name,
                    True,
                    True,
                    f"rule {_rule_name(rule)} aborts incomplete multipart uploads after "
                    f"{_abort_days(rule)} days",
                )
        detail = (
            "no rule aborts incomplete multipart uploads (their parts are billed until aborted)"
        )
        if blocking:
            detail += (
                f"; ensure does not put the guard's rule {GUARD_RULE_ID} here (see "
                "noncurrent_expiration): add a rule of yours with AbortIncompleteMultipartUpload "
                f"for {f'the prefix {self.scope!r}' if self.scope else 'the whole bucket'}"
            )
        return Finding(name, False, True, detail)

    def _blocking(self, rules: list[dict[str, Any]], days: int) -> list[dict[str, Any]]:
        """The enabled rules of others, overlapping the documents (whole bucket, a prefix of
        theirs, or narrower inside it), whose retention the guard's rule would shorten if
        added or updated to `days`: where lifecycle rules overlap, S3 applies the shortest
        expiration. None when the guard's own rule already expires noncurrent versions of all
        the documents after at most `days` (updating it then shortens nothing)."""
        own = next((r for r in rules if r.get("ID") == GUARD_RULE_ID), None)
        if own is not None and self._covers(own) and not _newer_kept(own):
            kept = _noncurrent_days(own)
            if kept is not None and kept <= days:
                return []
        return [
            r
            for r in rules
            if r.get("ID") != GUARD_RULE_ID and self._overlaps(r) and _keeps_longer(r, days)
        ]

    def _refusal(self, blocking: list[dict[str, Any]], days: int) -> str:
        """Why ensure leaves the lifecycle configuration alone, and what the operator can do."""
        named = ", ".join(
            f"{_rule_name(r)} ({_under(_rule_prefix(r))}: {_retention(r)})" for r in blocking
        )
        advice = f"lower their NoncurrentDays to {days} yourself"
        if any(_newer_kept(r) for r in blocking):
            advice += " (without NewerNoncurrentVersions)"
        else:
            most = max(_noncurrent_days(r) or 0 for r in blocking)
            advice += f", or set documents.noncurrent_days to {most} to keep them that long"
        return (
            f"ensure does not put the guard's rule {GUARD_RULE_ID} ({days} days): rule(s) "
            f"{named} keep noncurrent versions longer, and where lifecycle rules overlap S3 "
            f"applies the shortest expiration, so the guard's rule would permanently delete "
            f"versions they keep; {advice}"
        )

    def _replication_finding(self, replication: dict[str, Any] | None) -> Finding:
        name = "replication"
        wanted = self.documents.replication.destination
        rules = [r for r in (replication or {}).get("Rules") or [] if self._covers(r)]
        described = ", ".join(
            f"{_replication_destination(r)} (rule {_rule_name(r)})" for r in rules
        )
        if wanted:
            arn = _bucket_arn(wanted)
            ok = any(_replication_destination(r) == arn for r in rules)
            detail = f"replicated to {described}" if ok else f"not replicated to {arn}"
            if not ok and described:
                detail += f" (replicated to {described})"
            return Finding(name, ok, True, detail)
        if rules:
            return Finding(name, True, False, f"replicated to {described}")
        return Finding(
            name,
            False,
            False,
            "not configured (set documents.replication.destination and .role to have "
            "`bucket ensure` configure it)",
        )

    def _warnings(self, rules: list[dict[str, Any]], days: int) -> list[str]:
        warnings = []
        for rule in rules:
            if not self._overlaps(rule):
                continue
            shorter = _noncurrent_days(rule)
            if shorter is not None and shorter < days:
                warnings.append(
                    f"rule {_rule_name(rule)} expires noncurrent versions after {shorter} days, "
                    f"sooner than documents.noncurrent_days ({days}): "
                    f"{_under(_rule_prefix(rule))}, undelete and restore reach "
                    f"back {shorter} days only"
                )
            if rule.get("Expiration", {}).get("Days") or rule.get("Expiration", {}).get("Date"):
                warnings.append(
                    f"rule {_rule_name(rule)} expires current objects "
                    f"{_under(_rule_prefix(rule))}: documents there disappear "
                    "(and, versioned, are deleted later as noncurrent versions)"
                )
        own = next((r for r in rules if r.get("ID") == GUARD_RULE_ID and _enabled(r)), None)
        ours = _noncurrent_days(own) if own is not None else None
        if ours is not None:
            for rule in rules:
                if rule is own or not self._overlaps(rule) or not _keeps_longer(rule, ours):
                    continue
                warnings.append(
                    f"rule {_rule_name(rule)} keeps noncurrent versions {_retention(rule)} "
                    f"{_under(_rule_prefix(rule))}, but the guard's rule {GUARD_RULE_ID} expires "
                    f"them after {ours} days there (S3 applies the shortest expiration): if that "
                    "rule's retention is meant, remove the guard's rule or set "
                    f"documents.noncurrent_days to {_noncurrent_days(rule)} and run ensure"
                )
        return warnings

    # -- ensure ---------------------------------------------------------------------------------

    def guard_rule(self, legacy: bool = False, noncurrent: bool = True) -> dict[str, Any]:
        """The guard's own lifecycle rule (in the old top-level Prefix form when the bucket's
        other rules use it: one configuration should not mix both forms). Without
        `noncurrent` it only aborts incomplete multipart uploads: for a bucket whose own rule
        already keeps noncurrent versions long enough."""
        rule: dict[str, Any] = {"ID": GUARD_RULE_ID}
        if legacy:
            rule["Prefix"] = self.scope
        else:
            rule["Filter"] = {"Prefix": self.scope}
        rule["Status"] = "Enabled"
        if noncurrent:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": self.documents.noncurrent_days}
        rule["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": self.documents.abort_multipart_days
        }
        return rule

    def _is_guard_rule(self, rule: dict[str, Any]) -> bool:
        """Whether `rule` (as read back) is exactly the guard rule wanted now."""
        noncurrent = rule.get("NoncurrentVersionExpiration") or {}
        return (
            _enabled(rule)
            and rule_scope(rule) == self.scope
            and set(noncurrent) == {"NoncurrentDays"}
            and noncurrent["NoncurrentDays"] == self.documents.noncurrent_days
            and _abort_days(rule) == self.documents.abort_multipart_days
            and not any(rule.get(action) for action in _CURRENT_ACTIONS)
        )

    def plan(self, status: BucketStatus | None = None) -> Plan:
        """The changes that make the bucket what `check` recommends; nothing is changed."""
        status = status or self.check()
        plan = Plan(status)
        if status.versioning != "Enabled":
            plan.changes.append(
                Change(
                    "versioning",
                    "enable versioning",
                    f"turn versioning on (now {status.versioning})",
                    status.versioning,
                    "Enabled",
                )
            )
        self._plan_lifecycle(plan)
        self._plan_replication(plan)
        return plan

    def _plan_lifecycle(self, plan: Plan) -> None:
        status = plan.status
        rules = status.rules
        index = next((i for i, r in enumerate(rules) if r.get("ID") == GUARD_RULE_ID), None)
        legacy = any("Filter" not in r and "Prefix" in r for r in rules)
        wanted = self.guard_rule(legacy)
        if index is not None:
            if self._is_guard_rule(rules[index]):
                return
            if self._refuses(plan):
                return
            new_rules = [*rules[:index], wanted, *rules[index + 1 :]]
            change = Change(
                "lifecycle",
                f"update rule {GUARD_RULE_ID}",
                f"update the guard's rule in place: noncurrent versions expire after "
                f"{self.documents.noncurrent_days} days, incomplete multipart uploads are "
                f"aborted after {self.documents.abort_multipart_days} days",
                rules[index],
                wanted,
            )
        else:
            if status.finding("noncurrent_expiration").ok and status.finding("abort_multipart").ok:
                plan.notes.append(
                    "lifecycle: the bucket's own rules already do what the guard's would"
                )
                return
            if status.finding("noncurrent_expiration").ok:
                # another rule keeps noncurrent versions long enough: the guard's rule only
                # aborts multipart uploads, which shortens no one's retention
                wanted = self.guard_rule(legacy, noncurrent=False)
                what = (
                    f"aborting incomplete multipart uploads {_under(self.scope)} after "
                    f"{self.documents.abort_multipart_days} days; noncurrent versions are "
                    "left to the bucket's own rule"
                )
            elif self._refuses(plan):
                return
            else:
                what = (
                    f"noncurrent versions {_under(self.scope)} expire after "
                    f"{self.documents.noncurrent_days} days, incomplete multipart uploads are "
                    f"aborted after {self.documents.abort_multipart_days} days"
                )
            new_rules = [*rules, wanted]
            change = Change(
                "lifecycle",
                f"add rule {GUARD_RULE_ID}",
                f"add the guard's rule (keeping the {len(rules)} other rule(s)): {what}",
                None,
                wanted,
            )
        configuration = copy.deepcopy(status.lifecycle or {})
        configuration["Rules"] = copy.deepcopy(new_rules)
        plan.lifecycle = configuration
        plan.changes.append(change)

    def _refuses(self, plan: Plan) -> bool:
        """Whether the guard's rule would shorten another rule's retention: then the plan
        leaves the lifecycle configuration alone, with a note saying why."""
        blocking = self._blocking(plan.status.rules, self.documents.noncurrent_days)
        if blocking:
            plan.notes.append(
                f"lifecycle: {self._refusal(blocking, self.documents.noncurrent_days)}"
            )
        return bool(blocking)

    def _plan_replication(self, plan: Plan) -> None:
        settings = self.documents.replication
        status = plan.status
        finding = status.finding("replication")
        if not (settings.destination and settings.role):
            if not finding.ok:
                plan.notes.append(
                    "replication: not configured, and documents.replication names no "
                    "destination and role, so ensure leaves it alone"
                )
            return
        existing = status.replication or {}
        rules = list(existing.get("Rules") or [])
        index = next((i for i, r in enumerate(rules) if r.get("ID") == GUARD_RULE_ID), None)
        if finding.ok and index is None:
            return  # another rule replicates to the destination already
        others = [r for r in rules if r.get("ID") != GUARD_RULE_ID]
        if others and existing.get("Role") != settings.role:
            plan.notes.append(
                "replication: the bucket replicates with another IAM role than "
                "documents.replication.role; ensure does not change a role other rules use: "
                "change it by hand, or set documents.replication.role to it"
            )
            return
        destination: dict[str, Any] = {"Bucket": _bucket_arn(settings.destination or "")}
        if settings.storage_class:
            destination["StorageClass"] = settings.storage_class
        legacy = any("Filter" not in r for r in rules)
        wanted: dict[str, Any] = {"ID": GUARD_RULE_ID}
        if legacy:
            wanted.update(Prefix=self.scope, Status="Enabled", Destination=destination)
        else:
            priorities = [r.get("Priority") or 0 for i, r in enumerate(rules) if i != index]
            current = rules[index].get("Priority") if index is not None else None
            wanted.update(
                Priority=current or max(priorities, default=0) + 1,
                Filter={"Prefix": self.scope},
                Status="Enabled",
                DeleteMarkerReplication={"Status": "Disabled"},
                Destination=destination,
            )
        if index is not None:
            if existing.get("Role") == settings.role and self._same_replication_rule(
                rules[index], wanted
            ):
                return
            new_rules = [*rules[:index], wanted, *rules[index + 1 :]]
            action = f"update replication rule {GUARD_RULE_ID}"
        else:
            new_rules = [*rules, wanted]
            action = f"add replication rule {GUARD_RULE_ID}"
        plan.replication = {"Role": settings.role, "Rules": copy.deepcopy(new_rules)}
        plan.changes.append(
            Change(
                "replication",
                action,
                f"replicate the objects {_under(self.scope)} to {destination['Bucket']} "
                f"with role {settings.role}",
                rules[index] if index is not None else None,
                wanted,
            )
        )

    def _same_replication_rule(self, rule: dict[str, Any], wanted: dict[str, Any]) -> bool:
        destination = rule.get("Destination") or {}
        return (
            _enabled(rule)
            and rule_scope(rule) == self.scope
            and _replication_destination(rule) == wanted["Destination"]["Bucket"]
            and destination.get("StorageClass") == wanted["Destination"].get("StorageClass")
        )

    def apply(self, plan: Plan) -> BucketStatus:
        """Make the plan's changes, then check again. Refuses (OperationFailed) when a
        configuration changed since the plan read it, and when another rule is missing
        afterwards."""
        for change in plan.changes:
            if change.setting == "versioning":
                self.store.request(
                    "put_bucket_versioning",
                    "turning versioning on (s3:PutBucketVersioning)",
                    VersioningConfiguration={"Status": "Enabled"},
                )
            elif change.setting == "lifecycle" and plan.lifecycle is not None:
                if self._lifecycle() != plan.status.lifecycle:
                    raise OperationFailed(
                        f"the lifecycle configuration of bucket {self.bucket} changed while "
                        "ensure ran: nothing written; run ensure again"
                    )
                self.store.request(
                    "put_bucket_lifecycle_configuration",
                    "writing the lifecycle configuration (s3:PutLifecycleConfiguration)",
                    **_lifecycle_request(plan.lifecycle),
                )
            elif change.setting == "replication" and plan.replication is not None:
                if self._replication() != plan.status.replication:
                    raise OperationFailed(
                        f"the replication configuration of bucket {self.bucket} changed while "
                        "ensure ran: nothing written; run ensure again"
                    )
                self.store.request(
                    "put_bucket_replication",
                    "writing the replication configuration (s3:PutReplicationConfiguration "
                    "and iam:PassRole on the role)",
                    ReplicationConfiguration=plan.replication,
                )
        after = self.check()
        lost = [
            _rule_name(r)
            for r in plan.status.rules
            if r.get("ID") != GUARD_RULE_ID and r not in after.rules
        ]
        if lost:
            raise OperationFailed(
                f"after ensure, lifecycle rule(s) {', '.join(lost)} of bucket {self.bucket} "
                "are no longer as they were: someone changed the configuration at the same "
                "time; check it by hand"
            )
        return after

    def ensure(self, dry_run: bool = False) -> tuple[Plan, BucketStatus]:
        """Plan, and apply unless `dry_run`; (plan, the bucket's state afterwards)."""
        plan = self.plan()
        if dry_run or not plan.changed:
            return plan, plan.status
        return plan, self.apply(plan)

    # -- undelete and restore -------------------------------------------------------------------

    def _full_key(self, key: str) -> str:
        if not isinstance(key, str) or not key or key.startswith("/"):
            raise UsageError(
                f"invalid key {key!r}: give the object's key, relative to {self.store.url}"
            )
        full = f"{self.prefix}/{key}" if self.prefix else key
        if len(full.encode("utf-8")) > 1024:
            raise UsageError(f"invalid key {key[:40]!r}...: longer than S3's 1024 bytes")
        return full

    def _key_url(self, key: str) -> str:
        return self.store.key_url(key)

    def _require_versioning(self, action: str) -> None:
        versioning, _ = self._versioning()
        if versioning != "Enabled":
            state = "Suspended" if versioning == "Suspended" else "not enabled"
            raise UsageError(
                f"versioning is {state} on bucket {self.bucket}: {action} needs the old "
                "versions a versioned bucket keeps; turn it on with `spectron-backup bucket "
                "ensure` (versions written while it was off cannot be brought back)"
            )

    def history(self, key: str) -> tuple[list[Version], list[Version]]:
        """(versions, delete markers) of `key`, each newest first, as S3 lists them."""
        full = self._full_key(key)
        versions: list[Version] = []
        markers: list[Version] = []
        kwargs: dict[str, Any] = {"Prefix": full}
        while True:
            page = self.store.request(
                "list_object_versions",
                "listing the versions of a key (s3:ListBucketVersions)",
                **kwargs,
            )
            for item in page.get("Versions") or ():
                if item["Key"] == full:
                    versions.append(_version(item, False))
            for item in page.get("DeleteMarkers") or ():
                if item["Key"] == full:
                    markers.append(_version(item, True))
            # Keys are listed in order: once the listing is past `full`, its history is whole.
            if not page.get("IsTruncated") or page.get("NextKeyMarker") != full:
                return versions, markers
            kwargs.update(KeyMarker=full, VersionIdMarker=page.get("NextVersionIdMarker"))

    def undelete(self, key: str, *, dry_run: bool = False) -> KeyOutcome:
        """Remove the delete marker(s) on top of `key`'s newest version, which becomes current
        again. A key that is not deleted is left alone (changed=False)."""
        full = self._full_key(key)
        url = self._key_url(key)
        self._require_versioning("undelete")
        versions, markers = self.history(key)
        outcome = KeyOutcome("undelete", url, key, False, dry_run, "")
        if not versions and not markers:
            raise UsageError(
                f"{url}: no such object (no version and no delete marker): nothing to undelete; "
                f"check the key (relative to {self.store.url})"
            )
        latest = _latest(versions, markers)
        if latest is not None and not latest.delete_marker:
            outcome.version = latest
            outcome.message = f"{url} is not deleted: its current version is {latest.version_id}"
            return outcome
        if not versions:
            raise UsageError(
                f"{url}: only delete markers are left, no version to bring back (noncurrent "
                f"versions expire after {self.documents.noncurrent_days} days): nothing to restore"
            )
        newest = versions[0]
        if dry_run:
            # S3 stamps to the second: a marker of the newest version's second may lie above or
            # below it, and only the real run (which removes the latest marker until a version
            # is current) finds out. Those are counted apart, not silently left out.
            on_top = [m for m in markers if m.is_latest or m.last_modified > newest.last_modified]
            tied = [
                m for m in markers if m not in on_top and m.last_modified == newest.last_modified
            ]
            outcome.version = newest
            outcome.removed_delete_markers = on_top
            maybe = (
                f" (and up to {len(tied)} more, stamped in the same second as that version)"
                if tied
                else ""
            )
            outcome.message = (
                f"would remove {len(on_top)} delete marker(s) of {url}{maybe}; version "
                f"{newest.version_id} of {_iso(newest.last_modified)} would be current again"
            )
            return outcome
        for _ in range(len(markers)):
            assert latest is not None and latest.delete_marker
            self.store.request(
                "delete_object",
                "removing a delete marker (s3:DeleteObjectVersion)",
                Key=full,
                VersionId=latest.version_id,
            )
            outcome.removed_delete_markers.append(latest)
            versions, markers = self.history(key)
            latest = _latest(versions, markers)
            if latest is None or not latest.delete_marker:
                break
        if latest is None or latest.delete_marker:
            raise OperationFailed(f"{url}: still deleted after removing its delete markers")
        outcome.changed = True
        outcome.version = latest
        outcome.message = (
            f"{url} is back: removed {len(outcome.removed_delete_markers)} delete marker(s); "
            f"current version {latest.version_id} of {_iso(latest.last_modified)}"
        )
        return outcome

    def restore(
        self,
        key: str,
        *,
        as_of: datetime | None = None,
        version_id: str | None = None,
        dry_run: bool = False,
    ) -> KeyOutcome:
        """Copy the version of `key` that was current at `as_of` (or the version `version_id`)
        over its current version. Refuses (UsageError) when the key did not exist then."""
        if (as_of is None) == (version_id is None):
            raise UsageError("restore needs exactly one of --as-of TIME and --version-id ID")
        full = self._full_key(key)
        url = self._key_url(key)
        self._require_versioning("restore")
        versions, markers = self.history(key)
        if not versions and not markers:
            raise UsageError(
                f"{url}: no such object (no version and no delete marker): nothing to restore; "
                f"check the key (relative to {self.store.url})"
            )
        if version_id is not None:
            chosen = self._by_id(url, version_id, versions, markers)
        else:
            assert as_of is not None
            chosen = self._as_of(url, as_of, versions, markers)
        outcome = KeyOutcome("restore", url, key, False, dry_run, "", version=chosen)
        if chosen.is_latest:
            outcome.message = f"version {chosen.version_id} is already the current one of {url}"
            return outcome
        if dry_run:
            outcome.message = (
                f"would copy version {chosen.version_id} of {_iso(chosen.last_modified)} "
                f"over the current version of {url}"
            )
            return outcome
        self.store.copy_version(
            full,
            chosen.version_id,
            chosen.size or 0,
            "copying an old version over the current one (s3:GetObjectVersion, s3:PutObject)",
        )
        versions, markers = self.history(key)
        latest = _latest(versions, markers)
        outcome.changed = True
        outcome.new_version_id = latest.version_id if latest else None
        outcome.message = (
            f"{url}: version {chosen.version_id} of {_iso(chosen.last_modified)} copied over "
            f"the current one (new version {outcome.new_version_id})"
        )
        return outcome

    @staticmethod
    def _by_id(
        url: str, version_id: str, versions: list[Version], markers: list[Version]
    ) -> Version:
        for version in versions:
            if version.version_id == version_id:
                return version
        if any(m.version_id == version_id for m in markers):
            raise UsageError(f"{url}: {version_id} is a delete marker, not a version to restore")
        raise UsageError(
            f"{url}: no version {version_id} (see the versions with `aws s3api "
            "list-object-versions`, or use --as-of TIME)"
        )

    @staticmethod
    def _as_of(
        url: str, as_of: datetime, versions: list[Version], markers: list[Version]
    ) -> Version:
        before = [v for v in versions if v.last_modified <= as_of]
        deleted = [m for m in markers if m.last_modified <= as_of]
        if not before and not deleted:
            oldest = min(v.last_modified for v in versions + markers)
            raise UsageError(
                f"{url} did not exist yet at {_iso(as_of)} (its oldest version is of "
                f"{_iso(oldest)}): nothing to restore"
            )
        moment = max(v.last_modified for v in before + deleted)
        same_versions = [v for v in before if v.last_modified == moment]
        same_markers = [m for m in deleted if m.last_modified == moment]
        latest_marker = any(m.is_latest for m in same_markers)
        if same_markers and (latest_marker or not same_versions):
            raise UsageError(
                f"{url} was deleted at {_iso(moment)}, so at {_iso(as_of)} there was nothing to "
                "restore: choose an earlier time, or bring back its newest version with "
                "`spectron-backup bucket undelete`"
            )
        if same_markers and not any(v.is_latest for v in same_versions):
            ids = ", ".join(v.version_id for v in same_versions + same_markers)
            raise UsageError(
                f"{url} has a version and a delete marker both stamped {_iso(moment)}; S3 "
                "reports times to the second, so which one was current then is unknown: "
                f"restore with --version-id (one of {ids}), or choose another time"
            )
        return same_versions[0]  # S3 lists a key's versions newest first


def _version(item: dict[str, Any], delete_marker: bool) -> Version:
    modified = item["LastModified"]
    modified = modified.astimezone(UTC) if modified.tzinfo else modified.replace(tzinfo=UTC)
    return Version(
        version_id=str(item.get("VersionId") or "null"),
        last_modified=modified,
        is_latest=bool(item.get("IsLatest")),
        delete_marker=delete_marker,
        size=None if delete_marker else int(item.get("Size") or 0),
    )


def _latest(versions: list[Version], markers: list[Version]) -> Version | None:
    return next((v for v in versions + markers if v.is_latest), None)


def _lifecycle_request(configuration: dict[str, Any]) -> dict[str, Any]:
    """PutBucketLifecycleConfiguration's arguments for a configuration as Get returned it
    (TransitionDefaultMinimumObjectSize is a parameter of its own; keep it, if any)."""
    request: dict[str, Any] = {"LifecycleConfiguration": {"Rules": configuration["Rules"]}}
    if configuration.get("TransitionDefaultMinimumObjectSize"):
        request["TransitionDefaultMinimumObjectSize"] = configuration[
            "TransitionDefaultMinimumObjectSize"
        ]
    return request
