"""Errors that carry the command line's exit status.

Exit status 2 means bad usage, configuration or input (the operator must change something);
exit status 1 means the operation ran and failed its purpose.
"""


class SpectronBackupError(Exception):
    """Base of every error the tool reports as one clear line."""

    exit_code = 1
    #: whether the same step may succeed when retried later (a server restarting, a reset
    #: connection, throttling): the flows retry these, whatever the exit status
    transient = False


class UsageError(SpectronBackupError):
    """Bad usage, configuration or input: exit status 2."""

    exit_code = 2


class OperationFailed(SpectronBackupError):
    """The operation ran and failed its purpose: exit status 1."""

    exit_code = 1


class ServerUnreachable(UsageError):
    """A server that does not answer at the address given. On the command line that is for
    the operator to check (exit status 2: the address, the server); a scheduled run retries
    it, since a server that is restarting answers again."""

    transient = True
