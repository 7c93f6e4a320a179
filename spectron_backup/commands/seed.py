"""`spectron-backup seed`: a realistic, deterministic Spectron instance, for demos, tests and
benchmarks."""

from __future__ import annotations

from typing import Annotated

import typer

from spectron_backup.commands.options import (
    JsonOutput,
    Password,
    Token,
    Username,
    credentials,
    reports_errors,
)
from spectron_backup.console import err, print_json
from spectron_backup.errors import UsageError
from spectron_backup.seed import SeedPlan, seed_instance
from spectron_backup.stores import Store, open_store
from spectron_backup.surreal import connect


@reports_errors
def command(
    target: Annotated[
        str,
        typer.Option("--target", help="SurrealDB URL to seed (must be empty).", show_default=False),
    ],
    documents: Annotated[
        str | None,
        typer.Option(
            "--documents",
            help="Document store for the original bytes: file:///path or s3://bucket.",
            show_default=False,
        ),
    ] = None,
    documents_endpoint: Annotated[
        str | None,
        typer.Option(
            "--documents-endpoint-url",
            help="S3-compatible endpoint of the document store.",
            show_default=False,
        ),
    ] = None,
    contexts: Annotated[int, typer.Option("--contexts", min=1, help="Number of Contexts.")] = 2,
    scale: Annotated[
        float, typer.Option("--scale", min=0.01, help="About 1,000 records per Context at 1.0.")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data.")] = 0,
    embedding_width: Annotated[
        int, typer.Option("--embedding-width", min=1, help="Width of the embedding vectors.")
    ] = 384,
    username: Username = None,
    password: Password = None,
    token: Token = None,
    json_output: JsonOutput = False,
) -> None:
    """Seed a Spectron instance: control plane, Contexts, memory, documents.

    The document store is probed (a small object written and deleted) once the databases are
    found empty and before anything is written: a bad --documents leaves nothing behind.
    """
    store: Store | None = None
    if documents:
        if documents_endpoint and not documents.startswith("s3://"):
            raise UsageError("--documents-endpoint-url applies to an s3:// --documents store only")
        store = open_store(documents, endpoint_url=documents_endpoint, setting="--documents")
    elif documents_endpoint:
        raise UsageError("--documents-endpoint-url needs --documents s3://bucket[/prefix]")
    plan = SeedPlan(contexts=contexts, scale=scale, seed=seed, embedding_width=embedding_width)
    with connect(target, credentials(username, password, token)) as conn:
        result = seed_instance(conn, plan, documents=store)
    if json_output:
        print_json(
            {
                "contexts": [c.__dict__ for c in result.contexts],
                "records": result.records,
                "documents": result.documents,
            }
        )
        return
    err.print(
        f"seeded {conn.display_url}: {len(result.contexts)} Contexts, {result.total_records:,} records, {result.documents} documents"
    )
