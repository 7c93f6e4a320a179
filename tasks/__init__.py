"""Prefect tasks: thin wrappers around core functions (retries, logging, artifacts)."""
