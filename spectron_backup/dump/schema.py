"""A fingerprint of a database's schema, so a restore can prove its schema came back."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from spectron_backup.surreal import SurrealConnection, surreal_identifier

#: INFO FOR TABLE keys that are schema (not `lives`, which are sessions' live queries)
_TABLE_KEYS = ("events", "fields", "indexes", "tables")


def fingerprint(db_info: dict[str, Any], table_infos: dict[str, dict[str, Any]]) -> str:
    """sha256 of the canonical JSON of INFO FOR DB and every INFO FOR TABLE."""
    document = {
        "db": {
            key: dict(sorted((value or {}).items()))
            for key, value in sorted(db_info.items())
            if isinstance(value, dict)
        },
        "tables": {
            name: {key: dict(sorted((info.get(key) or {}).items())) for key in _TABLE_KEYS}
            for name, info in sorted(table_infos.items())
        },
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def schema_fingerprint(conn: SurrealConnection, *, txn: Any = None) -> str:
    """The fingerprint of the database `conn` has selected."""
    db_info = conn.run_one("INFO FOR DB", txn=txn) or {}
    tables = {
        name: conn.run_one(f"INFO FOR TABLE {surreal_identifier(name)}", txn=txn) or {}
        for name in (db_info.get("tables") or {})
    }
    return fingerprint(db_info, tables)
