"""Logs and progress for ``taskbox run``: JSON lines for machines, a readable format and a bar for people.

Why: the orchestrators ``taskbox run`` serves collect a container's stderr into a log system (Argo, KFP,
Airflow, Batch/CloudWatch) that indexes JSON objects, and Argo shows a step's progress from the file
named by ``ARGO_PROGRESS_FILE`` (``N/M``). A person at a terminal wants neither JSON nor a file.

Invariants:
    * One JSON object per line: ``time``, ``level``, ``logger``, ``message``, plus ``executor``/``task``
      once known and the Flyte identity (``execution``, ``project``, ``domain``, ``attempt``...) when
      the Flyte variables are set; ``exc`` holds a traceback.
    * Formatting runs after the redaction filter on the same handler (:func:`taskbox.logs.configure`),
      so secrets are masked in JSON lines too.
    * The progress file is replaced atomically (write + rename) at each step; a failure to write it is
      logged once and never fails the run. The bar is plain text on stderr, only on a terminal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

__all__ = ["JsonFormatter", "Progress", "configure", "identity_fields"]

log = logging.getLogger("taskbox.run")

HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_IDENTITY_VARS = {
    "execution": ("FLYTE_INTERNAL_EXECUTION_ID", "_F_NM"),
    "project": ("FLYTE_INTERNAL_EXECUTION_PROJECT", "_F_PRJ"),
    "domain": ("FLYTE_INTERNAL_EXECUTION_DOMAIN", "_F_DM"),
    "workflow": ("FLYTE_INTERNAL_EXECUTION_WORKFLOW", "_F_WF"),
    "task_name": ("FLYTE_INTERNAL_TASK_NAME", "_F_TK_NM"),
    "task_version": ("FLYTE_INTERNAL_TASK_VERSION", "_F_TK_V"),
    "attempt": ("FLYTE_ATTEMPT_NUMBER", "FLYTE_ATTEMPT_NUMBER"),
}


def identity_fields(environ: Mapping[str, str]) -> dict[str, str]:
    """Return the run's identity from Flyte's variables (or flytekit's short aliases), those that are set."""
    out = {}
    for field, (long_name, alias) in _IDENTITY_VARS.items():
        value = environ.get(long_name) or environ.get(alias)
        if value:
            out[field] = value
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record; :attr:`fields` (mutable) are added to every line."""

    def __init__(self, fields: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.fields: dict[str, str] = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:  # noqa: D102 - see the class
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(self.fields)
        if record.exc_info:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class _HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(HUMAN_FORMAT, datefmt="%H:%M:%S")
        self.fields: dict[str, str] = {}


def configure(log_format: str, level: str | None, stream: TextIO | None = None) -> Any:
    """Install the stderr handler with the JSON or the human formatter.

    Args:
        log_format: ``json``, ``text``, or ``auto`` (text on a terminal, JSON otherwise).
        level: The log level (default ``TASKBOX_LOG_LEVEL`` or INFO).
        stream: The stream judged for ``auto`` (stderr).

    Returns:
        The formatter; set ``formatter.fields["executor"]`` once the executor is known.

    """
    from taskbox import logs

    stream = stream or sys.stderr
    use_json = log_format == "json" or (log_format == "auto" and not _isatty(stream))
    formatter: Any = JsonFormatter(identity_fields(os.environ)) if use_json else _HumanFormatter()
    logs.configure(level, formatter)
    return formatter


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Steps of a run, written as ``N/M`` to a progress file and shown as a bar on a terminal.

    Args:
        total: The number of steps.
        path: The progress file (``--progress-file`` / ``ARGO_PROGRESS_FILE``), or ``None``.
        stream: Where the bar goes, if it is a terminal.

    """

    WIDTH = 24

    def __init__(self, total: int, path: str | None, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.path = path
        self.stream = stream or sys.stderr
        self.bar = _isatty(self.stream)
        self._warned = False
        self._write()

    def step(self, label: str) -> None:
        """Mark one more step done (never past ``total``)."""
        self.done = min(self.total, self.done + 1)
        self._write()
        if self.bar:
            filled = self.WIDTH * self.done // self.total
            self.stream.write(f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} {label}\n")
            self.stream.flush()

    def _write(self) -> None:
        if not self.path:
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="ascii") as fh:
                fh.write(f"{self.done}/{self.total}")
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot write the progress file %s: %s", self.path, exc)
