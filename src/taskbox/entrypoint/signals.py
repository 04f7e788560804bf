"""SIGTERM handling: stop the task, commit a recoverable error, exit 143 within a grace period.

Why: Kubernetes stops a pod with SIGTERM, waits ``terminationGracePeriodSeconds`` (30 s by default),
then sends SIGKILL. Python installs no SIGTERM handler, so without one ``finally`` blocks never run;
and as PID 1 in a container, an unhandled SIGTERM is ignored altogether until the SIGKILL. taskbox
installs its handler first thing, so an evicted attempt leaves a recoverable ``error.pb`` (Flyte then
retries it) instead of nothing.

Invariants:
    * While the task runs ("armed"), SIGTERM raises :class:`taskbox.errors.Terminated` in the main
      thread and sets the context's ``cancelled`` event; outside it (during the commit) the signal is
      only recorded, so a commit file is never cut in half by our own handler.
    * After the first SIGTERM a watchdog ends the process with exit code 143 after the grace period
      (``TASKBOX_TERM_GRACE_S``, default 10 s), whatever the commit is doing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from taskbox.errors import Terminated

T = TypeVar("T")

EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, what a shell reports for a SIGTERM'd process
DEFAULT_GRACE_S = 10.0


class TerminationGuard:
    """Owns the process's SIGTERM handler for one run."""

    def __init__(self) -> None:
        self.received = False
        self._armed = False
        self._cancelled: threading.Event | None = None
        self._watchdog: threading.Timer | None = None

    def install(self) -> None:
        """Install the handler (main thread only)."""
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        first = not self.received
        self.received = True
        if self._cancelled is not None:
            self._cancelled.set()
        if first:
            self._start_watchdog()
        if self._armed:
            self._armed = False
            raise Terminated()

    def _start_watchdog(self) -> None:
        try:
            grace = float(os.environ.get("TASKBOX_TERM_GRACE_S", DEFAULT_GRACE_S))
        except ValueError:
            grace = DEFAULT_GRACE_S
        self._watchdog = threading.Timer(grace, os._exit, args=(EXIT_TERMINATED,))
        self._watchdog.daemon = True
        self._watchdog.start()

    def run(self, fn: Callable[[], T], cancelled: threading.Event | None = None) -> T:
        """Run ``fn`` with SIGTERM raising ``Terminated`` inside it.

        Args:
            fn: The task body.
            cancelled: An event to set when SIGTERM arrives (the executor context's).

        Returns:
            What ``fn`` returns.
        """
        self._cancelled = cancelled
        if self.received:
            if cancelled is not None:
                cancelled.set()
            raise Terminated()
        self._armed = True
        try:
            return fn()
        finally:
            self._armed = False
