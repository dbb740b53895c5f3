"""Exceptions raised by lptrack.

Plain Python classes (so they pickle across processes) that subclass the
standard exceptions users already catch.
"""

from __future__ import annotations


class LptrackError(Exception):
    """Base class of every lptrack-specific error."""


class LockTimeoutError(LptrackError, TimeoutError):
    """A lock wait ran past its timeout; the message names the holder's pid."""

    def __init__(self, message: str, holder_pid: int = 0) -> None:
        super().__init__(message)
        self.holder_pid = holder_pid

    def __reduce__(self):
        return (type(self), (str(self), self.holder_pid))


class LayoutMismatchError(LptrackError, ValueError):
    """An existing segment has another capacity, row width or layout version."""


class SegmentError(LptrackError, OSError):
    """A shared segment could not be created, attached or is corrupt."""


class PoolFullError(LptrackError, RuntimeError):
    """No free slot is left (raised only where the API promises an error, e.g. load_state)."""


class LockReentryError(LptrackError, RuntimeError):
    """The thread that holds a table's lock asked for it again (the lock is not re-entrant)."""


class ScoreRangeWarning(UserWarning):
    """A score outside [0, 1] was recorded.

    The learning-progress formulas assume success rates in [0, 1]; other scores are
    still accepted and used as given (as the original did), and the warning is
    shown once per process.
    """


class ExchangeError(LptrackError, RuntimeError):
    """An exchange of lptrack.distributed failed: a rank died or did not join within the group's timeout."""
