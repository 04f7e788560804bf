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
    * ``Terminated`` is never raised inside an import: a module whose import is cut short leaves its
      package half-initialised in ``sys.modules`` (later ``import`` statements then fail with
      AttributeError), and the commit that follows may need that very package (s3fs, to write
      ``error.pb``). The signal is re-sent to the main thread until the import has finished.
    * After the first SIGTERM a watchdog ends the process with exit code 143 after the grace period
      (``TASKBOX_TERM_GRACE_S``, default 10 s), whatever the commit is doing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from taskbox import settings
from taskbox.errors import ConfigError, Terminated

T = TypeVar("T")

EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, what a shell reports for a SIGTERM'd process
DEFAULT_GRACE_S = settings.TERM_GRACE_DEFAULT_S
_REDELIVER_S = 0.02  # how often a SIGTERM that arrived during an import is re-sent
_IMPORT_MACHINERY = frozenset({"importlib._bootstrap", "importlib._bootstrap_external"})  # frozen or not


def _in_import(frame: FrameType | None) -> bool:
    """Tell whether ``frame`` runs inside an import (importlib's frames are on its stack)."""
    while frame is not None:
        if frame.f_globals.get("__name__") in _IMPORT_MACHINERY:
            return True
        frame = frame.f_back
    return False


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
            if _in_import(frame):
                self._redeliver()
                return
            self._armed = False
            raise Terminated()

    def _redeliver(self) -> None:
        main = threading.main_thread().ident
        if main is not None:
            timer = threading.Timer(_REDELIVER_S, signal.pthread_kill, args=(main, signal.SIGTERM))
            timer.daemon = True
            timer.start()

    def _start_watchdog(self) -> None:
        try:
            grace = settings.seconds("TASKBOX_TERM_GRACE_S", DEFAULT_GRACE_S)
        except ConfigError:  # in a signal handler; settings.validate() fails the run at its start
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
