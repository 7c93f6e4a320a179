"""spectron-backup: backups, restore drills and memory expiry for a self-hosted Spectron."""

__version__ = "0.1.0"
