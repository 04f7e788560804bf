"""Logging set-up for the entrypoint: one stderr handler, secrets redacted on every record.

Invariants:
    * The redacting filter sits on the handler, so records from any library logger (botocore,
      sqlalchemy, httpx) are redacted too, not only taskbox's own.
    * The level comes from ``TASKBOX_LOG_LEVEL`` (default INFO); stdout stays free for command output.
"""

from __future__ import annotations

import logging
import sys

from taskbox import settings
from taskbox.redaction import RedactingFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str | None = None, formatter: logging.Formatter | None = None) -> None:
    """Install the stderr handler on the root logger (idempotent).

    Args:
        level: Log level name; default ``TASKBOX_LOG_LEVEL`` or INFO.
        formatter: The handler's formatter (``taskbox run`` passes a JSON one); default :data:`FORMAT`.

    """
    root = logging.getLogger()
    if any(getattr(h, "_taskbox", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter or logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    handler._taskbox = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    name = (level or settings.string("TASKBOX_LOG_LEVEL", "INFO")).upper()
    root.setLevel(getattr(logging, name, logging.INFO))
