"""``taskbox run``'s exit codes: how an orchestrator that reads only the exit code learns the outcome.

0 success; 1 user error (retrying will not help); 2 malformed command line; 3 system error that is not
recoverable; 75 recoverable error (``EX_TEMPFAIL``), the one to retry on; 143 SIGTERM (recoverable too).

Invariants:
    * The code follows the error document's origin and recoverability (:func:`taskbox.entrypoint.commit.describe`),
      so ``error.pb``, ``error.json`` and the exit code never disagree.
"""

from __future__ import annotations

from taskbox.entrypoint.signals import EXIT_TERMINATED

__all__ = ["EXIT_CODES", "EXIT_OK", "EXIT_RECOVERABLE", "EXIT_SYSTEM", "EXIT_TERMINATED", "EXIT_USAGE", "EXIT_USER",
           "exit_code"]  # fmt: skip

EXIT_OK = 0
EXIT_USER = 1
EXIT_USAGE = 2
EXIT_SYSTEM = 3
EXIT_RECOVERABLE = 75
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_USER: "user error (not recoverable)",
    EXIT_USAGE: "malformed command line",
    EXIT_SYSTEM: "system error, not recoverable",
    EXIT_RECOVERABLE: "recoverable error: retry",
    EXIT_TERMINATED: "terminated by SIGTERM (recoverable)",
}


def exit_code(failure: BaseException) -> int:
    """Return the exit code for a failure, by its origin and recoverability."""
    from taskbox.entrypoint import commit
    from taskbox.errors import Terminated

    if isinstance(failure, Terminated):
        return EXIT_TERMINATED
    _, origin, recoverable, _ = commit.describe(failure)
    if recoverable:
        return EXIT_RECOVERABLE
    return EXIT_USER if origin == "USER" else EXIT_SYSTEM
