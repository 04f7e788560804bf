"""taskbox's executors as flytekit (Flyte v1) tasks, for flytekit workflows.

Why: a flytekit ``@workflow`` mixes Python ``@task`` functions with tasks whose code is already in an image. These
classes make taskbox's executors such tasks, the flytekit way (pre-built container tasks,
``PythonCustomizedContainerTask``): ``pyflyte run`` and plain calls run them in-process through the executor
image's own pipeline, and ``pyflyte package``/``register`` serialize them into flytekit's template-resolver
container args, which taskbox's executor images (no flytekit there) run with ``taskbox execute``. User guide:
docs/flytekit.md; plugin authors: docs/plugins.md.

Names (resolved on first use; importing this package imports neither flytekit nor protobuf):

* :class:`SQLiteTask`, :class:`SQLTask`, :class:`HTTPTask`, :class:`HTTPJobTask` — the built-in executors'
  tasks (:mod:`taskbox.flytekit.tasks`);
* :class:`TaskboxTask` — their base, for any executor in taskbox's registry (a plugin's task class);
* :class:`TaskFailed` / :class:`RecoverableTaskFailed` — what a failed run raises (taskbox's error code);
* :class:`ExecutorSpec` — an executor and its validated config (no flytekit needed).

Invariants:
    * Nothing in taskbox imports this package (the top layer, beside :mod:`taskbox.flyte2`, independent of it).
    * ``taskbox.flytekit.executors.<name>`` stays the executor class path of the serialized args: the images
      resolve it by name in :mod:`taskbox.executors.registry`, without importing this package.
"""

from __future__ import annotations

from taskbox._lazy import lazy_attributes

__all__ = [
    "ExecutorSpec",
    "HTTPJobTask",
    "HTTPTask",
    "RecoverableTaskFailed",
    "SQLTask",
    "SQLiteTask",
    "TaskFailed",
    "TaskboxTask",
]

_LAZY = {
    "ExecutorSpec": "taskbox.flytekit.spec",
    "HTTPJobTask": "taskbox.flytekit.tasks",
    "HTTPTask": "taskbox.flytekit.tasks",
    "RecoverableTaskFailed": "taskbox.flytekit.executors",
    "SQLTask": "taskbox.flytekit.tasks",
    "SQLiteTask": "taskbox.flytekit.tasks",
    "TaskFailed": "taskbox.flytekit.executors",
    "TaskboxTask": "taskbox.flytekit.task",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, requires=("flytekit",), needs="flytekit", extra="flytekit")
