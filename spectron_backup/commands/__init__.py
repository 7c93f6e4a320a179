"""One module per command, each with its own options (as pgBackRest does)."""
