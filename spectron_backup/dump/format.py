"""The pieces of the `surreal export` text format that writer and reader share."""

HEADER_RULE = "-- ------------------------------"

#: Database-level sections in the order SurrealDB 3.x's exporter writes them, as
#: (INFO FOR DB key, section title).
DB_SECTIONS: tuple[tuple[str, str], ...] = (
    ("users", "USERS"),
    ("accesses", "ACCESSES"),
    ("params", "PARAMS"),
    ("functions", "FUNCTIONS"),
    ("analyzers", "ANALYZERS"),
    ("models", "MODELS"),
    ("apis", "APIS"),
    ("buckets", "BUCKETS"),
    ("modules", "MODULES"),
    ("configs", "CONFIGS"),
    ("sequences", "SEQUENCES"),
)

REDACTED = "'[REDACTED]'"

#: Records per INSERT line: the exporter's SURREAL_EXPORT_BATCH_SIZE default.
INSERT_BATCH = 1000


def comment_text(text: str) -> str:
    """`text` made safe for a `--` comment: a line break in a table or namespace name would
    end the comment and the rest of the name would run as SurrealQL on import."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def section_header(title: str) -> str:
    return f"{HEADER_RULE}\n-- {comment_text(title)}\n{HEADER_RULE}\n\n"
