"""Deployment helpers and automations kept as code (applied by `make deploy`)."""
