"""``PrebuiltTaskResolver``: the ``--resolver`` of a prebuilt task's ``a0`` args, shaped like flyte's resolvers.

Why: the container args of a :class:`taskbox.flyte2.PrebuiltTask` name this class
(:data:`taskbox.entrypoint.cmdline_v2.PREBUILT_RESOLVER`) with ``template <encoded TaskTemplate> executor
<name>``. ``taskbox a0`` in an executor image reads those args itself (no SDK there); this class gives the
same args flyte's resolver protocol (``import_path``, ``loader_args``, ``load_task``, as flyte's
``DefaultTaskResolver``), so flyte's own ``a0`` can load such a task in an image that has both, and the
task class builds its args through it.

Example::

    resolver = PrebuiltTaskResolver()
    args = resolver.loader_args(top_tracks, root_dir)   # ["template", "tbx1:...", "executor", "sqlite"]
    task = resolver.load_task(args)                      # a PrebuiltTask running that very template

Invariants:
    * ``load_task(loader_args(task, root))`` runs the same template as ``task`` (same bytes).
    * The args' grammar is ``a0``'s: ``template <encoded>`` first or after ``executor <name>``, each once,
      nothing else (``TemplateError`` otherwise).
    * Importing this module imports neither flyte nor protobuf; ``load_task`` needs the flyte SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["PrebuiltTaskResolver", "parse_loader_args"]


def parse_loader_args(args: Sequence[str]) -> dict[str, str]:
    """``template <encoded> [executor <name>]`` as a dict (:func:`taskbox.entrypoint.a0.prebuilt_args`).

    Raises:
        TemplateError: Another shape.
    """
    from taskbox.entrypoint.a0 import prebuilt_args
    from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER

    return prebuilt_args(PREBUILT_RESOLVER, list(args))


class PrebuiltTaskResolver:
    """Loads a prebuilt task from its container args (flyte's resolver protocol)."""

    @property
    def import_path(self) -> str:
        """``taskbox.flyte2.PrebuiltTaskResolver``."""
        from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER

        return PREBUILT_RESOLVER

    def loader_args(self, task: Any, root_dir: Any = None) -> list[str]:
        """The resolver args of ``task`` (a :class:`taskbox.flyte2.PrebuiltTask`); ``root_dir`` is not needed."""
        return ["template", task.encoded_template(), "executor", task.plugin_config.executor]

    def load_task(self, loader_args: Sequence[str]) -> Any:
        """Rebuild the task the args describe.

        Raises:
            TemplateError: The args or the template cannot be read.
            ConfigError: The template's config does not validate.
        """
        from taskbox.entrypoint.a0 import decode_inline_template
        from taskbox.flyte2.tasks import PrebuiltTask

        fields = parse_loader_args(loader_args)
        return PrebuiltTask.from_template(decode_inline_template(fields["template"]), fields.get("executor"))
