"""``@taskbox.task``: a typed Python function as a Flyte task run by taskbox.

Why: most tasks are a few lines of the user's own Python. The decorator turns a function into a task
whose Flyte interface comes from its type hints (through the literal engine, so values travel exactly
as flytekit encodes them), whose ``TaskTemplate`` starts ``taskbox execute`` with the
``taskbox.function`` resolver (optionally behind ``taskbox fast-execute`` and a code bundle), and which
runs in-process through the very pipeline the container runs.

Interface rules (flytekit's):
    * Every parameter needs a type hint; a parameter with a default is optional (Flyte ``Parameter``
      with ``default``; the function's own default applies when the input is absent).
    * Return annotation: a ``typing.NamedTuple`` gives one output per field; ``tuple[A, B]`` gives
      ``o0``, ``o1``; ``None`` or no annotation gives no outputs; anything else is the single output ``o0``.

Invariants:
    * Decoration validates every hint with the literal engine, so a type taskbox cannot carry fails at
      import with ``ConfigError``/``UnsupportedType`` naming the parameter, never inside a container.
    * Calling the decorated object is calling the function: same arguments, same result (a coroutine
      for an ``async def``, to await as usual), no conversion and no execution context.
    * The container args name the function by ``task-module <module> task-name <name>``; a task that is
      not reachable that way (a nested function, ``__main__``) cannot build a template.
"""

from __future__ import annotations

import datetime
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from taskbox import __version__
from taskbox.errors import ConfigError, OutputError, TaskboxError

__all__ = ["TASK_TYPE", "Task", "default_task_image", "task"]

#: ``TaskTemplate.type`` of function tasks (flytekit's, for python function tasks).
TASK_TYPE = "python-task"
#: The resolver the container args name (:data:`taskbox.entrypoint.cmdline.FUNCTION_RESOLVER`).
RESOLVER = "taskbox.function"

#: Resource names accepted in ``requests``/``limits`` -> ``tasks_pb2.Resources.ResourceName`` names.
RESOURCE_NAMES = {
    "cpu": "CPU",
    "gpu": "GPU",
    "mem": "MEMORY",
    "memory": "MEMORY",
    "storage": "STORAGE",
    "ephemeral_storage": "EPHEMERAL_STORAGE",
}

#: The decorated function's parameters and return type: ``Task[P, R]`` is called as the function is.
P = typing.ParamSpec("P")
R = typing.TypeVar("R")

# Code-object flags (``inspect`` is not imported: it costs ~10 ms at every task start).
_CO_VARARGS, _CO_VARKEYWORDS, _CO_COROUTINE = 0x04, 0x08, 0x80


def default_task_image() -> str | None:
    """Return the image a function task's template uses when ``template(image=...)`` is not given.

    The image catalog's ``python`` variant (user tasks from bundles) for the installed taskbox version,
    digest-pinned once a release recorded the digest.
    """
    from taskbox.authoring.base import default_image

    return default_image("python")


class Task(typing.Generic[P, R]):
    """A ``@taskbox.task`` function: callable as before, plus its Flyte interface, template and runner.

    ``Task[P, R]`` keeps the function's signature for type checkers: ``add(1, "x")`` is flagged as it
    would be without the decorator, and ``add(1, 2)`` is an ``int`` for ``def add(a: int, b: int) -> int``.

    Build it with :func:`task`. Attributes (read-only by convention):

    Attributes:
        function: The decorated function.
        name: The task's name (``TaskTemplate.id.name``): ``module.function`` unless given.
        module: The function's module (``task-module`` in the container args).
        function_name: The function's name (``task-name``).
        is_async: True for ``async def`` functions.
        inputs: Input name -> Python type hint, in signature order.
        defaults: Input name -> default value, for optional inputs.
        outputs: Output name -> Python type hint.
        retries: Flyte retries for recoverable failures.
        timeout: Flyte's per-attempt timeout, or ``None``.
        requests: Resource requests, ``{"cpu": "1", "mem": "1Gi", ...}``.
        limits: Resource limits, same keys.
        secrets: Requested secrets as ``(group, key, group_version)``.
        cache_version: Flyte cache (discovery) version; ``None`` disables caching.
    """

    #: Lets the ``taskbox.function`` resolver recognise a task without importing this module
    #: (:data:`taskbox.entrypoint.function.TASK_MARKER`).
    __taskbox_task__ = True

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str | None = None,
        retries: int = 0,
        timeout: float | datetime.timedelta | None = None,
        requests: Mapping[str, str | int | float] | None = None,
        limits: Mapping[str, str | int | float] | None = None,
        secrets: Sequence[str | Sequence[str | None]] | None = None,
        cache_version: str | None = None,
    ) -> None:
        if not isinstance(function, types.FunctionType):
            raise ConfigError(f"@taskbox.task decorates a function (def or async def), got {function!r}")
        self.function = function
        self.module: str = getattr(function, "__module__", None) or "__main__"
        self.function_name: str = getattr(function, "__name__", "") or repr(function)
        self.__name__ = self.function_name
        self.__qualname__ = getattr(function, "__qualname__", self.function_name)
        self.__module__ = self.module
        self.__doc__ = function.__doc__
        self.__wrapped__ = function
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"task name must be a non-empty string, got {name!r}")
        self.name = name or f"{self.module}.{self.function_name}"
        self.is_async = bool(function.__code__.co_flags & _CO_COROUTINE)
        self.retries = _check_retries(retries)
        self.timeout = _check_timeout(timeout)
        self.requests = _check_resources("requests", requests)
        self.limits = _check_resources("limits", limits)
        self.secrets = _check_secrets(secrets)
        if cache_version is not None and (not isinstance(cache_version, str) or not cache_version):
            raise ConfigError(f"cache_version must be a non-empty string, got {cache_version!r}")
        self.cache_version = cache_version
        self.inputs, self.defaults, self.outputs, self._shape = _interface(function, self.function_name)

    # ------------------------------------------------------------------ plain Python

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function itself (a coroutine for ``async def``), exactly as without the decorator."""
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Task({self.name!r}, inputs={list(self.inputs)}, outputs={list(self.outputs)})"

    @property
    def optional_inputs(self) -> frozenset[str]:
        """Inputs with a default (the function's default applies when the input is absent)."""
        return frozenset(self.defaults)

    # ------------------------------------------------------------------ values <-> outputs

    def outputs_of(self, result: Any) -> dict[str, Any]:
        """Map the function's return value onto its declared outputs.

        Raises:
            OutputError: The value does not have the declared shape (says what was declared and returned).
        """
        shape = self._shape
        if shape is None:
            if result is not None:
                raise OutputError(
                    f"task {self.name!r} declares no outputs but returned {type(result).__name__}; "
                    "annotate its return type to declare an output"
                )
            return {}
        if shape == "single":
            return {"o0": result}
        names = list(self.outputs)
        if not isinstance(result, tuple):
            raise OutputError(
                f"task {self.name!r} declares outputs {', '.join(names)} (a tuple of {len(names)}) "
                f"but returned {type(result).__name__}"
            )
        if len(result) != len(names):
            raise OutputError(
                f"task {self.name!r} declares {len(names)} outputs ({', '.join(names)}) "
                f"but returned a tuple of {len(result)}"
            )
        return dict(zip(names, result, strict=True))

    def result_of(self, outputs: Mapping[str, Any]) -> Any:
        """Invert :meth:`outputs_of`: the value the function would return for these outputs."""
        shape = self._shape
        if shape is None:
            return None
        if shape == "single":
            return outputs["o0"]
        values = [outputs[n] for n in self.outputs]
        return tuple(values) if shape == "tuple" else shape(*values)

    # ------------------------------------------------------------------ Flyte objects

    def literal_types(self, which: str = "inputs") -> dict[str, Any]:
        """Input (or ``"outputs"``) name -> ``LiteralType``, as flytekit declares them."""
        from taskbox.literals import TypeEngine

        hints = self.inputs if which == "inputs" else self.outputs
        return {n: TypeEngine.to_literal_type(t) for n, t in hints.items()}

    def interface(self) -> Any:
        """Build the ``flyteidl.core.interface_pb2.TypedInterface`` (inputs and outputs as variables)."""
        from flyteidl.core import interface_pb2

        def variables(types: Mapping[str, Any]) -> Any:
            return interface_pb2.VariableMap(
                variables={n: interface_pb2.Variable(type=t, description=n) for n, t in types.items()}
            )

        return interface_pb2.TypedInterface(
            inputs=variables(self.literal_types("inputs")), outputs=variables(self.literal_types("outputs"))
        )

    def parameters(self) -> Any:
        """Return the inputs as a ``ParameterMap`` (for launch plans): defaults as literals, the rest required.

        ``Optional`` inputs defaulting to ``None`` get a plain ``none_type`` literal, as flytekit writes.
        """
        from flyteidl.core import interface_pb2, literals_pb2

        from taskbox.literals import TypeEngine
        from taskbox.literals.engine import is_union, strip_annotated

        types = self.literal_types("inputs")
        params = {}
        for n, t in types.items():
            var = interface_pb2.Variable(type=t, description=n)
            if n not in self.defaults:
                params[n] = interface_pb2.Parameter(var=var, required=True)
                continue
            value = self.defaults[n]
            if value is None and is_union(strip_annotated(self.inputs[n])):
                literal = literals_pb2.Literal(scalar=literals_pb2.Scalar(none_type=literals_pb2.Void()))
            else:
                try:
                    literal = TypeEngine.to_literal(value, self.inputs[n], literal_type=t)
                except TaskboxError as exc:
                    raise ConfigError(f"default of input {n!r} of task {self.name!r}: {exc}") from exc
            params[n] = interface_pb2.Parameter(var=var, default=literal)
        return interface_pb2.ParameterMap(parameters=params)

    def container_args(self, *, bundle: str | None = None, dest_dir: str = ".") -> list[str]:
        """Return the container args: ``[taskbox fast-execute ... --] taskbox execute ... -- task-module M ...``.

        Args:
            bundle: The code bundle's URI (from ``taskbox bundle``); without it the image holds the code.
            dest_dir: The directory under which fast-execute installs the bundle
                (``DIR/.taskbox-bundles/<key>/``, then first on ``sys.path``).
        """
        from taskbox.entrypoint.cmdline import function_task_args

        self._require_importable()
        return function_task_args(self.module, self.function_name, bundle=bundle, dest_dir=dest_dir)

    def template(
        self,
        *,
        image: str | None = None,
        bundle: str | None = None,
        dest_dir: str = ".",
        project: str = "",
        domain: str = "",
        version: str = "",
    ) -> Any:
        """Build the ``flyteidl.core.tasks_pb2.TaskTemplate`` (type ``python-task``, runtime flavor ``taskbox``).

        Args:
            image: The container image; :func:`default_task_image` if omitted.
            bundle: Code bundle URI: the args start with ``taskbox fast-execute`` (see :meth:`container_args`).
            dest_dir: Extraction directory for the bundle.
            project: ``id.project``.
            domain: ``id.domain``.
            version: ``id.version``.

        Raises:
            ConfigError: The task cannot be named in container args (nested function, ``__main__``).
        """
        from flyteidl.core import identifier_pb2, literals_pb2, security_pb2, tasks_pb2

        args = self.container_args(bundle=bundle, dest_dir=dest_dir)
        image = image if image is not None else default_task_image()
        metadata = tasks_pb2.TaskMetadata(
            runtime=tasks_pb2.RuntimeMetadata(
                type=tasks_pb2.RuntimeMetadata.OTHER, version=__version__, flavor="taskbox"
            ),
            retries=literals_pb2.RetryStrategy(retries=self.retries),
        )
        if self.timeout is not None:
            metadata.timeout.FromTimedelta(self.timeout)
        if self.cache_version is not None:
            metadata.discoverable = True
            metadata.discovery_version = self.cache_version

        def entries(resources: Mapping[str, str]) -> list[Any]:
            return [
                tasks_pb2.Resources.ResourceEntry(
                    name=tasks_pb2.Resources.ResourceName.Value(RESOURCE_NAMES[k]), value=v
                )
                for k, v in resources.items()
            ]

        container = tasks_pb2.Container(image=image or "", args=args)
        if self.requests or self.limits:
            container.resources.CopyFrom(
                tasks_pb2.Resources(requests=entries(self.requests), limits=entries(self.limits))
            )
        template = tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(
                resource_type=identifier_pb2.TASK, project=project, domain=domain, name=self.name, version=version
            ),
            type=TASK_TYPE,
            metadata=metadata,
            interface=self.interface(),
            container=container,
        )
        for group, key, group_version in self.secrets:
            template.security_context.secrets.append(
                security_pb2.Secret(group=group, key=key or "", group_version=group_version or "")
            )
        return template

    # ------------------------------------------------------------------ in-process runs

    def run(self, **inputs: Any) -> Any:
        """Run the task in this process through ``taskbox execute``'s pipeline, on local storage.

        Inputs are converted to literals and back by the type hints, the function runs under the
        ``taskbox.function`` resolver (async functions on a fresh event loop), and the outputs are read
        back from the committed ``outputs.pb``: so a local run proves what a Flyte run will do.

        Returns:
            What the function returns, after the round trip through literals (a ``NamedTuple`` for
            named outputs, a tuple for ``tuple[...]``, ``None`` without outputs; files come back as
            :class:`taskbox.File` handles in the run's directory).

        Raises:
            TaskFailed: The run committed ``error.pb`` (carries its code, origin and recoverability).
        """
        return self.run_with(inputs)

    def run_with(
        self,
        inputs: Mapping[str, Any],
        *,
        workdir: str | None = None,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
    ) -> Any:
        """:meth:`run` with the run's options (names that cannot clash with the task's inputs).

        Args:
            inputs: Input values by name.
            workdir: Local directory for the run's files (a new temporary one, kept, if omitted).
            checkpoint_path: ``--checkpoint-path`` for this run (any storage URI).
            prev_checkpoint: ``--prev-checkpoint`` for this run.
        """
        from taskbox.authoring.local import run_function_task

        self._require_importable(in_process=True)
        return self.result_of(
            run_function_task(
                self, dict(inputs), workdir=workdir, checkpoint_path=checkpoint_path, prev_checkpoint=prev_checkpoint
            )
        )

    def resolver_args(self) -> list[str]:
        """``["task-module", M, "task-name", N]``, the ``taskbox.function`` resolver's arguments."""
        return ["task-module", self.module, "task-name", self.function_name]

    def _require_importable(self, *, in_process: bool = False) -> None:
        if self.__qualname__ != self.function_name:
            raise ConfigError(
                f"task {self.name!r} is defined inside {self.__qualname__.rsplit('.', 1)[0]!r}; taskbox loads "
                "tasks by module and name, so define the function at module level"
            )
        if in_process:
            import sys

            if getattr(sys.modules.get(self.module), self.function_name, None) is not self:
                raise ConfigError(
                    f"task {self.name!r} is not reachable as {self.module}.{self.function_name}; taskbox loads "
                    "tasks by module and name, so keep the decorated object under the function's own name"
                )
        elif self.module == "__main__":
            raise ConfigError(
                f"task {self.function_name!r} is defined in __main__; a container cannot import it by that "
                "name: move it to a module and import it from there"
            )


@typing.overload
def task(
    function: Callable[P, R],
    *,
    name: str | None = None,
    retries: int = 0,
    timeout: float | datetime.timedelta | None = None,
    requests: Mapping[str, str | int | float] | None = None,
    limits: Mapping[str, str | int | float] | None = None,
    secrets: Sequence[str | Sequence[str | None]] | None = None,
    cache_version: str | None = None,
) -> Task[P, R]: ...


@typing.overload
def task(
    function: None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    timeout: float | datetime.timedelta | None = None,
    requests: Mapping[str, str | int | float] | None = None,
    limits: Mapping[str, str | int | float] | None = None,
    secrets: Sequence[str | Sequence[str | None]] | None = None,
    cache_version: str | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    function: Callable[P, R] | None = None,
    *,
    name: str | None = None,
    retries: int = 0,
    timeout: float | datetime.timedelta | None = None,
    requests: Mapping[str, str | int | float] | None = None,
    limits: Mapping[str, str | int | float] | None = None,
    secrets: Sequence[str | Sequence[str | None]] | None = None,
    cache_version: str | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a typed Python function a taskbox task; use bare (``@taskbox.task``) or with options.

    Args:
        function: The function (given when used bare).
        name: ``TaskTemplate.id.name``; default ``module.function``.
        retries: Flyte retries for recoverable failures (``RecoverableError``, platform errors).
        timeout: Per-attempt timeout, seconds or a ``timedelta``.
        requests: Resource requests: keys ``cpu``, ``gpu``, ``mem``/``memory``, ``storage``,
            ``ephemeral_storage``; values as Kubernetes quantities (``"500m"``, ``"2Gi"``, ``1``).
        limits: Resource limits, same keys.
        secrets: Secrets the pod needs: a group name, or ``(group, key)``, or ``(group, key, group_version)``.
        cache_version: Enables Flyte's cache with this version.

    Returns:
        A :class:`Task` (or, with options only, a decorator that makes one).

    Raises:
        ConfigError: A parameter has no type hint, ``*args``/``**kwargs``, bad options.
        UnsupportedType: A hint names a type taskbox cannot convert.

    Example:
        >>> import taskbox
        >>> @taskbox.task(retries=2, requests={"cpu": "1", "mem": "1Gi"})
        ... def add(a: int, b: int = 1) -> int:
        ...     return a + b
        >>> add(1, 2)
        3
    """

    def make(f: Callable[P, R]) -> Task[P, R]:
        return Task(
            f,
            name=name,
            retries=retries,
            timeout=timeout,
            requests=requests,
            limits=limits,
            secrets=secrets,
            cache_version=cache_version,
        )

    return make if function is None else make(function)


# ---------------------------------------------------------------------- validation


def _check_retries(retries: Any) -> int:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"retries must be a non-negative int, got {retries!r}")
    return retries


def _check_timeout(timeout: Any) -> datetime.timedelta | None:
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        value = timeout
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        value = datetime.timedelta(seconds=timeout)
    else:
        raise ConfigError(f"timeout must be seconds or a timedelta, got {timeout!r}")
    if value <= datetime.timedelta(0):
        raise ConfigError(f"timeout must be positive, got {timeout!r}")
    return value


def _check_resources(what: str, resources: Any) -> dict[str, str]:
    if not resources:
        return {}
    if not isinstance(resources, Mapping):
        raise ConfigError(f"{what} must be a mapping like {{'cpu': '1', 'mem': '1Gi'}}, got {resources!r}")
    out: dict[str, str] = {}
    for key, value in resources.items():
        if key not in RESOURCE_NAMES:
            raise ConfigError(f"unknown resource {key!r} in {what}; known: {', '.join(sorted(RESOURCE_NAMES))}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or str(value).strip() == "":
            raise ConfigError(f"{what}[{key!r}] must be a quantity like '500m', '2Gi' or 1, got {value!r}")
        out[key] = str(value).strip()
    return out


def _check_secrets(secrets: Any) -> list[tuple[str, str | None, str | None]]:
    out: list[tuple[str, str | None, str | None]] = []
    if secrets is None:
        return out
    if isinstance(secrets, str):
        secrets = [secrets]
    for item in secrets:
        parts = (item,) if isinstance(item, str) else tuple(item) if isinstance(item, (tuple, list)) else ()
        if not 1 <= len(parts) <= 3 or not isinstance(parts[0], str) or not parts[0]:
            raise ConfigError(f"a secret is a group name, (group, key) or (group, key, group_version); got {item!r}")
        if any(p is not None and not isinstance(p, str) for p in parts):
            raise ConfigError(f"secret parts must be strings, got {item!r}")
        group, key, version = (*parts, None, None)[:3]
        out.append((group, key or None, version or None))
    return out


def _interface(function: Callable[..., Any], where: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any]:
    """Return inputs, defaults, outputs and the output shape (None, "single", "tuple" or a NamedTuple class)."""
    from taskbox.literals import TypeEngine

    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:
        raise ConfigError(
            f"cannot resolve the type hints of {where!r}: {type(exc).__name__}: {exc} "
            "(types used in hints must be importable at runtime, not only under TYPE_CHECKING)"
        ) from exc
    code = function.__code__
    if code.co_flags & (_CO_VARARGS | _CO_VARKEYWORDS):
        raise ConfigError(f"task {where!r}: *args/**kwargs cannot be task inputs; name each input")
    if code.co_posonlyargcount:
        name = code.co_varnames[0]
        raise ConfigError(f"task {where!r}: positional-only parameter {name!r}; inputs are passed by name")
    positional = code.co_varnames[: code.co_argcount]
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    positional_defaults = function.__defaults__ or ()
    defaults: dict[str, Any] = dict(
        zip(positional[len(positional) - len(positional_defaults) :], positional_defaults, strict=True)
    )
    defaults.update(function.__kwdefaults__ or {})
    inputs: dict[str, Any] = {}
    for name in names:
        if name not in hints:
            raise ConfigError(f"task {where!r}: input {name!r} has no type hint; taskbox needs one per input")
        inputs[name] = hints[name]
    outputs, shape = _outputs(hints, where)
    for kind, declared in (("input", inputs), ("output", outputs)):
        for n, t in declared.items():
            try:
                TypeEngine.to_literal_type(t)
            except TaskboxError as exc:
                raise type(exc)(f"task {where!r}: {kind} {n!r}: {exc}") from exc
    return inputs, defaults, outputs, shape


def _outputs(hints: Mapping[str, Any], where: str) -> tuple[dict[str, Any], Any]:
    if "return" not in hints:
        return {}, None
    hint = hints["return"]
    if hint is None or hint is type(None):
        return {}, None
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        fields = typing.get_type_hints(hint, include_extras=True)
        missing = [f for f in hint._fields if f not in fields]
        if missing:
            raise ConfigError(
                f"task {where!r}: return type {hint.__name__} has untyped fields {missing}; use typing.NamedTuple"
            )
        return {f: fields[f] for f in hint._fields}, hint
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if not args or Ellipsis in args or args == ((),):
            raise ConfigError(
                f"task {where!r}: return type {hint} has no fixed length; use tuple[A, B] or a typing.NamedTuple"
            )
        return {f"o{i}": t for i, t in enumerate(args)}, "tuple"
    if hint is tuple:
        raise ConfigError(f"task {where!r}: a bare tuple return type; use tuple[A, B] or a typing.NamedTuple")
    return {"o0": hint}, "single"
