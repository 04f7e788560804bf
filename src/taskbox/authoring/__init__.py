r"""Define taskbox tasks in Python: build their Flyte ``TaskTemplate``\\ s, or run them in-process.

Why: a prebuilt-executor task needs no code of its author's in the container, only a template. This
package builds those templates from Python objects, validated by the executors' own config models, and
runs them locally through the entrypoint's pipeline.

Invariants:
    * Importing this package imports no executor, no driver and no pyarrow; the task classes load their
      config models when a task is defined.
"""

from __future__ import annotations

from taskbox._lazy import lazy_attributes

__all__ = [
    "ExecutorTask",
    "HTTPJobTask",
    "HTTPTask",
    "SQLTask",
    "SQLiteTask",
    "TaskFailed",
    "TemplateTask",
    "run_template",
]

_LAZY = {
    "ExecutorTask": "taskbox.authoring.executor",
    "HTTPJobTask": "taskbox.authoring.http_job",
    "HTTPTask": "taskbox.authoring.http",
    "SQLTask": "taskbox.authoring.sql",
    "SQLiteTask": "taskbox.authoring.sql",
    "TaskFailed": "taskbox.authoring.base",
    "TemplateTask": "taskbox.authoring.base",
    "run_template": "taskbox.authoring.base",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
