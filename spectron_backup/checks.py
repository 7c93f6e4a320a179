"""The result of one check of a restore drill: what a report, an artifact and an alert show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckResult:
    database: str  # "ns/db" as in the manifest
    table: str | None  # None for database-wide checks
    check: str  # a stable name, e.g. "count_matches_manifest", "memory_category_in_set"
    passed: bool
    detail: str  # one human sentence: what was expected and what was found
    failing_ids: list[str] = field(default_factory=list)  # a few offending record ids

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "table": self.table,
            "check": self.check,
            "passed": self.passed,
            "detail": self.detail,
            "failing_ids": self.failing_ids,
        }

    def __str__(self) -> str:
        where = f"{self.database}" + (f" table {self.table}" if self.table else "")
        ids = f" (e.g. {', '.join(self.failing_ids[:5])})" if self.failing_ids else ""
        return f"{where}: {self.check}: {self.detail}{ids}"
