"""``ExecutorTask``: a task for any installed executor (a built-in or a plugin), defined in Python.

Why: the executor-specific classes (``SQLiteTask``, ``HTTPTask``...) spell their executor's config as
arguments; an executor from a plugin package has no such class. ``ExecutorTask`` takes the executor's
registry name and its config as a mapping, validates the config with the executor's own model when the task
is defined (``USER:InvalidConfig`` here, not in a pod), takes the interface the executor declares for that
config (completed by the task's declarations), and builds the same kind of template (``taskbox execute ... --resolver
taskbox.template -- {{.taskTemplatePath}} NAME``) and local run as the other classes.

Example::

    count = ExecutorTask("count_words", "wordcount", {"min_length": 3},
                         image="ghcr.io/me/taskbox-wordcount:0.1.0")   # the image `taskbox image build` made
    count.to_template(version="v1")   # register it
    count.run(text="a few words here")   # {"count": 3}, through the container's own pipeline

``taskbox template SPEC.yaml --out DIR`` builds the same template from YAML (:mod:`taskbox.entrypoint.templatecmd`).

Invariants:
    * The template is :func:`taskbox.entrypoint.taskspec.build_template`'s, as ``taskbox template``'s: the same
      spec gives equal templates.
    * Without ``image``, a built-in's task gets the catalog image holding it and a plugin's the ``base`` image
      (which does not hold the plugin): a plugin's task should name the image built for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskbox.authoring.base import TemplateTask

__all__ = ["ExecutorTask"]


class ExecutorTask(TemplateTask):
    """A task run by any installed executor, named by its registry name.

    Args:
        name: The task's name (``TaskTemplate.id.name``).
        executor: The executor's registry name: a built-in (``sqlite``, ``http``...) or a plugin's entry-point
            name (``taskbox executors`` lists them). A name registered from code
            (:func:`taskbox.executors.registry.register`) works for local runs only: a container finds
            executors by their entry points.
        config: The executor's config: a mapping (validated by its ``Config`` model now) or an instance of
            that model; ``None`` for no fields.
        inputs: Input name -> type: a Python type (``str``, ``list[int]``, ``taskbox.File``), a type-language
            string (``"str"``, ``"list[int]"``, ``"table"``) or a ``LiteralType``. The task's inputs are the
            executor's for this config (``Executor.interface``: its declared ``inputs``, those the config uses)
            with these added; a type given here wins.
        outputs: Output name -> type, as ``inputs``: added to the executor's declared and implied outputs
            (a SQL executor's ``results`` table is replaced by declared outputs, as in ``SQLiteTask``).
        image: Container image. Default: the catalog image holding a built-in executor, else the catalog's
            ``base`` image, which does *not* hold a plugin: name the image built for it
            (``taskbox image build --executor``).
        retries: Flyte retries for recoverable failures.
        secrets: Flyte secrets the pod needs beyond those the config reads (a config model's ``secret_refs()``
            or ``secret_connect_args`` are requested already), as ``(group, key, group_version)``.

    Attributes:
        spec: The resolved :class:`taskbox.entrypoint.taskspec.ExecutorTaskSpec` (executor, validated config,
            interface as ``LiteralType`` messages).

    Raises:
        ConfigError: ``executor`` is not a registry name, the config does not validate (``USER:InvalidConfig``,
            each field's problem listed), or a type cannot be read.
        ExecutorNotFound / ExecutorNotInstalled: No executor has that name here, or its dependencies are missing.
        PluginInvalid: The executor is broken, or its declared interface is.
    """

    def __init__(
        self,
        name: str,
        executor: str,
        config: Any = None,
        *,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        image: str | None = None,
        retries: int = 0,
        secrets: list[tuple[str, str | None, str | None]] | None = None,
    ) -> None:
        from taskbox.entrypoint.taskspec import resolve_executor_task
        from taskbox.errors import ConfigError

        if not isinstance(name, str) or not name:
            raise ConfigError(f"a task's name must be a non-empty string, got {name!r}")
        spec = resolve_executor_task(executor, config, inputs=inputs, outputs=outputs)
        self.spec = spec
        self.task_type = spec.task_type
        self.executor = spec.name
        self.checkpoints = spec.checkpoints
        requested = [(s.group, s.key, s.group_version) for s in spec.secrets]
        requested += [s for s in secrets or [] if s not in requested]
        super().__init__(
            name,
            config=spec.config,
            inputs=spec.inputs,
            outputs=spec.outputs,
            image=image or spec.default_image(),
            retries=retries,
            secrets=requested,
        )

    def __repr__(self) -> str:
        return (
            f"ExecutorTask({self.name!r}, {self.executor!r}, inputs={list(self.inputs)}, outputs={list(self.outputs)})"
        )

    def custom(self) -> dict[str, Any]:
        """Return the template's ``custom``: the validated config as JSON types (``{}`` without a config)."""
        return dict(self.spec.custom)
