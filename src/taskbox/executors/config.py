"""Base of every executor's ``custom`` config model (re-exported from :mod:`taskbox.configbase`).

docs/plugins.md tells plugin authors to ``from taskbox.executors.config import ExecutorConfig``; the class
lives in the leaf module :mod:`taskbox.configbase` so that :mod:`taskbox.sql` and :mod:`taskbox.http` can
derive from it without importing the executors' layer. See that module for the rules (versioned, strict,
durations bounded).
"""

from __future__ import annotations

from taskbox.configbase import MAX_SECONDS, ExecutorConfig, check_durations

__all__ = ["MAX_SECONDS", "ExecutorConfig", "check_durations"]
