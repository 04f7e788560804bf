"""taskbox's prebuilt executors as flyte-sdk (Flyte 2) tasks.

Why: a Flyte 2 workflow (``@env.task async def wf(...)``) calls ``await top_tracks(n=5)``; these task
classes make taskbox's executors such tasks. ``flyte.run`` runs them in-process through the executor
image's own pipeline, and the SDK serializes them into ``a0`` container args that the executor images
(which have no flyte SDK) run with ``taskbox a0``. User guide: docs/flyte2.md, section 3.

Names (resolved on first use; importing this package imports neither flyte nor protobuf):

* :class:`SQLiteTask`, :class:`SQLTask`, :class:`HTTPTask`, :class:`HTTPJobTask` — the task classes
  (:mod:`taskbox.flyte2.tasks`; need the ``flyte`` SDK, ``taskbox[flyte2]``);
* :class:`PrebuiltTask` — their base (any executor), :class:`PrebuiltConfig` — executor + validated config;
* :class:`PrebuiltTaskResolver` — the ``--resolver`` of their args (flyte's resolver protocol).

Invariants:
    * Nothing in taskbox imports this package (it is the top layer, above :mod:`taskbox.authoring`).
    * ``taskbox.flyte2.PrebuiltTaskResolver`` stays importable by that name: container args name it.
"""

from __future__ import annotations

from taskbox._lazy import lazy_attributes

__all__ = [
    "HTTPJobTask",
    "HTTPTask",
    "PrebuiltConfig",
    "PrebuiltTask",
    "PrebuiltTaskResolver",
    "SQLTask",
    "SQLiteTask",
]

_LAZY = {
    "HTTPJobTask": "taskbox.flyte2.tasks",
    "HTTPTask": "taskbox.flyte2.tasks",
    "PrebuiltConfig": "taskbox.flyte2.config",
    "PrebuiltTask": "taskbox.flyte2.tasks",
    "PrebuiltTaskResolver": "taskbox.flyte2.resolver",
    "SQLTask": "taskbox.flyte2.tasks",
    "SQLiteTask": "taskbox.flyte2.tasks",
}


__getattr__, __dir__ = lazy_attributes(
    __name__, _LAZY, requires=("flyte", "flyteidl2"), needs="the flyte SDK", extra="flyte2"
)
