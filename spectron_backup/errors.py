"""Errors that carry the command line's exit status.

Exit status 2 means bad usage, configuration or input (the operator must change something);
exit status 1 means the operation ran and failed its purpose.
"""


class SpectronBackupError(Exception):
    """Base of every error the tool reports as one clear line."""

    exit_code = 1


class UsageError(SpectronBackupError):
    """Bad usage, configuration or input: exit status 2."""

    exit_code = 2


class OperationFailed(SpectronBackupError):
    """The operation ran and failed its purpose: exit status 1."""

    exit_code = 1
