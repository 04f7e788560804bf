"""taskbox's prebuilt executors as flyte-sdk (Flyte 2) tasks: ``SQLiteTask``, ``SQLTask``, ``HTTPTask``...

Why: a Flyte 2 workflow calls tasks with ``await task(...)``; a prebuilt executor's task has no function of
its author's, only a configuration and an interface. These classes are ``flyte.extend.TaskTemplate``
subclasses (the SDK's extension model, as its own SQL plugins), so the SDK serializes them
(``translate_task_to_wire``) and runs them (``flyte.run`` local mode calls :meth:`PrebuiltTask.execute`).
They take the arguments of their :mod:`taskbox.authoring` namesakes, which validate the configuration
with the executor's own model when the task is defined; the interface uses flyte's types (a SQL result is
a ``flyte.io.DataFrame``).

Example::

    import flyte
    from flyte.io import DataFrame
    from taskbox.flyte2 import SQLiteTask

    top_tracks = SQLiteTask(
        "top_tracks",
        "SELECT TrackId, Name FROM tracks ORDER BY TrackId LIMIT {{ .inputs.n }}",
        uri="s3://bucket/chinook.zip", compressed=True, inputs={"n": int},
    )
    tracks_env = flyte.TaskEnvironment.from_task("tracks", top_tracks)   # its image: the sqlite executor's
    env = flyte.TaskEnvironment("wf", depends_on=[tracks_env])

    @env.task
    async def wf(n: int) -> DataFrame:
        return await top_tracks(n=n)

Invariants:
    * The wire: ``type`` is the executor's task type, ``custom`` its validated config, and the container
      args are ``a0 ... --resolver taskbox.flyte2.PrebuiltTaskResolver template <encoded v1 TaskTemplate>
      executor <name>`` (:func:`taskbox.entrypoint.cmdline_v2.a0_args`): the executor image runs them with
      ``taskbox a0`` and no SDK; the encoded template's interface is the SDK's own, byte for byte.
    * A local run goes through the image's pipeline in this process (:mod:`taskbox.flyte2.local`), so it
      commits and fails as the image would; no value is ever put in the args.
    * ``override()`` works (``dataclasses.replace`` rebuilds through the classes' constructors), including
      ``override(plugin_config=config.updated(...))``: :class:`PrebuiltConfig` is registered with
      ``flyte.extend.TaskPluginRegistry`` for :class:`PrebuiltTask`.
    * The secrets a configuration reads are requested in the task's security context, as environment
      variables named the way taskbox reads them (``_FSEC_<GROUP>_<KEY>``; a file mount when that is not a
      valid variable name); secrets the user adds are kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import re
from collections.abc import Mapping
from typing import Any

import flyte
from flyte.extend import TaskPluginRegistry, TaskTemplate

from taskbox.executors.base import config_errors
from taskbox.flyte2.config import PrebuiltConfig

__all__ = [
    "FLYTE_OPTIONS",
    "HTTPJobTask",
    "HTTPTask",
    "PrebuiltTask",
    "SQLTask",
    "SQLiteTask",
    "TemplatePolicy",
]

#: flyte ``TaskTemplate`` options the four classes accept beside the authoring arguments (the rest of
#: ``**options`` is the executor's configuration).
FLYTE_OPTIONS = frozenset(
    {
        "cache",
        "docs",
        "env_vars",
        "interruptible",
        "links",
        "max_inline_io_bytes",
        "pod_template",
        "queue",
        "resources",
        "secrets",
        "service_account",
        "short_name",
        "timeout",
    }
)
_ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")


class _ConfigSecret(flyte.Secret):  # type: ignore[misc]
    """A secret requested because the configuration reads it (replaced when the configuration changes)."""


class TemplatePolicy:
    """Cache policy of a prebuilt task: its version is its encoded template and image (there is no function body).

    Args:
        template: The serialized v1 ``TaskTemplate`` (config, interface, secrets).
        image: The image reference.
    """

    def __init__(self, template: bytes, image: str) -> None:
        self._template = template
        self._image = image

    def get_version(self, salt: str, params: Any) -> str:
        """Return the version: a SHA-256 of image, template and salt."""
        digest = hashlib.sha256(self._image.encode())
        digest.update(self._template)
        digest.update(salt.encode())
        return digest.hexdigest()


@dataclasses.dataclass(kw_only=True)
class PrebuiltTask(TaskTemplate):  # type: ignore[misc]
    """A flyte-sdk task run by a taskbox executor: an interface plus a :class:`PrebuiltConfig`.

    Build one with :class:`SQLiteTask`, :class:`SQLTask`, :class:`HTTPTask` or :class:`HTTPJobTask`, or
    directly with the dataclass fields (``name``, ``interface``, ``plugin_config`` and any
    ``TaskTemplate`` field). ``image`` defaults to the image catalog's image of the executor for the
    installed taskbox version; ``task_type`` is always the executor's.

    Raises:
        TypeError: ``plugin_config`` is not a :class:`PrebuiltConfig`, or flyte tries to make a function task
            of one (``TaskEnvironment(plugin_config=PrebuiltConfig(...))``).
        ValueError: ``reusable`` is set (an executor image has no reusable-container runtime).
    """

    plugin_config: PrebuiltConfig
    #: What flyte passes when a ``PrebuiltConfig`` is used as a function task's plugin config (refused).
    func: dataclasses.InitVar[Any] = None
    task_resolver: dataclasses.InitVar[Any] = None

    def __post_init__(self, func: Any = None, task_resolver: Any = None) -> None:
        fields: Any = self  # TaskTemplate's fields (flyte is untyped for the type checker)
        if func is not None:
            raise TypeError(
                f"{getattr(func, '__name__', func)!r}: a PrebuiltConfig configures a prebuilt task, not a function "
                "(TaskEnvironment(plugin_config=...) or a function task's override): define the task with "
                "taskbox.flyte2's SQLiteTask, SQLTask, HTTPTask, HTTPJobTask or PrebuiltTask"
            )
        if not isinstance(self.plugin_config, PrebuiltConfig):
            raise TypeError(f"plugin_config must be a taskbox.flyte2.PrebuiltConfig, got {type(self.plugin_config)}")
        if fields.reusable is not None:
            raise ValueError(f"task {fields.name!r}: a prebuilt executor's task cannot be reusable")
        fields.task_type = self.plugin_config.task_type
        if fields.image is None or fields.image == "auto":
            from taskbox.authoring.base import default_image

            fields.image = default_image(self.plugin_config.image_variant)
        super().__post_init__()
        fields.secrets = _with_config_secrets(fields.secrets, self.plugin_config)
        fields.cache = _with_template_policy(fields.cache, self)

    # ------------------------------------------------------------------ the wire

    def template_bytes(self) -> bytes:
        """The serialized v1 ``TaskTemplate`` the executor image runs (see :meth:`PrebuiltConfig.template`)."""
        interface = getattr(self, "_wire_interface", None)
        if interface is None:
            from flyte._internal.runtime.types_serde import transform_native_to_typed_interface

            interface = transform_native_to_typed_interface(self.native_interface).SerializeToString()
        return self.plugin_config.template(self.name, interface)

    def encoded_template(self) -> str:
        """:meth:`template_bytes` as the container args carry it (``encode_template``)."""
        from taskbox.entrypoint.cmdline_v2 import encode_template

        return encode_template(self.template_bytes())

    def custom_config(self, sctx: Any) -> dict[str, Any]:
        """The outer template's ``custom``: the executor's validated config (as in the encoded template)."""
        return dict(self.plugin_config.custom)

    def container_args(self, serialize_context: Any) -> list[str]:
        """``a0 ... --resolver taskbox.flyte2.PrebuiltTaskResolver template <encoded> executor <name>``."""
        from taskbox.entrypoint.cmdline import INPUT, OUTPUT_PREFIX
        from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, a0_args

        # PrebuiltTaskResolver.loader_args gives the same resolver args (flyte's own resolver protocol)
        resolver_args = ["template", self.encoded_template(), "executor", self.plugin_config.executor]
        args = a0_args(PREBUILT_RESOLVER, resolver_args, version=serialize_context.version)
        paths = {INPUT: serialize_context.input_path, OUTPUT_PREFIX: serialize_context.output_path}
        return [paths.get(arg) or arg for arg in args]

    # ------------------------------------------------------------------ running

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the executor in this process, through the image's pipeline (:func:`taskbox.flyte2.local.execute`)."""
        from taskbox.flyte2.local import execute

        return await execute(self, self.native_interface.convert_to_kwargs(*args, **kwargs))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Outside a flyte run, calling the task runs it here (a coroutine to await, as for async tasks)."""
        return self.execute(*args, **kwargs)

    @classmethod
    def from_template(cls, template: Any, executor: str | None = None) -> PrebuiltTask:
        """Rebuild a task from the v1 ``TaskTemplate`` its args carry (:class:`~taskbox.flyte2.PrebuiltTaskResolver`).

        The interface's Python types are guessed by flyte's type engine; the template keeps its own
        interface bytes, so the task runs exactly the template it was given.
        """
        from flyte.models import NativeInterface

        config = PrebuiltConfig.from_template(template, executor)
        wire_interface = template.interface.SerializeToString()
        inputs = _guess_types(template.interface.inputs.variables)
        native = NativeInterface(
            {k: (t, inspect.Parameter.empty) for k, t in inputs.items()},
            _guess_types(template.interface.outputs.variables),
        )
        task = cls(name=template.id.name or config.task_type, interface=native, plugin_config=config, image=None)
        task._wire_interface = wire_interface
        return task


TaskPluginRegistry.register(PrebuiltConfig, PrebuiltTask)


def _guess_types(variables: Any) -> dict[str, Any]:
    """Python types for a v1 ``VariableMap`` (flyte's type engine; a table of unknown format is a ``DataFrame``).

    flyte's ``guess_interface`` cannot reverse the type it writes for ``flyte.io.DataFrame`` (a
    ``structured_dataset_type`` with no format), so that one is mapped here.
    """
    from flyte.types import TypeEngine
    from flyteidl2.core import types_pb2

    guessed: dict[str, Any] = {}
    for name in sorted(variables):
        literal_type = types_pb2.LiteralType.FromString(variables[name].type.SerializeToString())
        try:
            guessed[name] = TypeEngine.guess_python_type(literal_type)
        except ValueError:
            if not literal_type.HasField("structured_dataset_type"):
                raise
            from flyte.io import DataFrame

            guessed[name] = DataFrame
    return guessed


def _with_config_secrets(secrets: Any, config: PrebuiltConfig) -> Any:
    """The user's secret requests, plus the ones ``config`` reads (those of an older config are dropped)."""
    from flyte._secret import secrets_from_request

    from taskbox.secrets import SecretStore

    kept = [s for s in secrets_from_request(secrets) if not isinstance(s, _ConfigSecret)] if secrets else []
    store = SecretStore(environ={})
    for spec in config.secrets:
        env_var = spec.env_var or store.env_var_name(spec.group, spec.key, spec.group_version)
        key, group = (spec.key, spec.group) if spec.key else (spec.group, None)
        if _ENV_VAR.match(env_var):
            kept.append(_ConfigSecret(key=key, group=group, as_env_var=env_var))
        else:  # taskbox also reads /etc/flyte/secrets/<group>/<key>
            from pathlib import Path

            kept.append(_ConfigSecret(key=key, group=group, mount=Path("/etc/flyte/secrets")))
    return kept or None


def _with_template_policy(cache: Any, task: PrebuiltTask) -> Any:
    """With ``cache="auto"``, version the cache by the template and image instead of a function body."""
    if cache.behavior != "auto":
        return cache
    from flyte._cache import FunctionBodyPolicy

    existing = cache.policies if isinstance(cache.policies, list) else [cache.policies]
    kept = [p for p in existing if p is not None and not isinstance(p, FunctionBodyPolicy | TemplatePolicy)]
    policy = TemplatePolicy(task.template_bytes(), _image_uri(task.image))
    return dataclasses.replace(cache, policies=[policy, *kept])


def _image_uri(image: Any) -> str:
    try:
        return str(image.uri)
    except Exception:  # noqa: BLE001 - an image whose URI needs a build: identify it by its repr
        return repr(image)


# ------------------------------------------------------------------ the four classes


def _interface(inputs: Mapping[str, Any] | None, outputs: Mapping[str, Any] | None) -> Any:
    from flyte.models import NativeInterface

    return NativeInterface({k: (t, inspect.Parameter.empty) for k, t in (inputs or {}).items()}, dict(outputs or {}))


def _sql_outputs(outputs: Mapping[str, Any] | None) -> dict[str, Any]:
    if outputs is not None:
        return dict(outputs)
    from flyte.io import DataFrame

    return {"results": DataFrame}


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``**options`` into flyte task options and executor config fields."""
    flyte_options = {k: v for k, v in options.items() if k in FLYTE_OPTIONS}
    return flyte_options, {k: v for k, v in options.items() if k not in FLYTE_OPTIONS}


def _rebuilding(options: Mapping[str, Any]) -> bool:
    """``dataclasses.replace`` (``override``) calls the constructor with every field, ``interface`` included."""
    return "interface" in options and "plugin_config" in options


def _required(cls: type, **values: Any) -> None:
    """Raise the ``TypeError`` Python raises for a missing argument.

    The parameters default to ``None`` for ``dataclasses.replace``, which passes the fields only.
    """
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise TypeError(f"{cls.__name__}() missing required argument(s): {', '.join(map(repr, missing))}")


def _init_from(
    task: PrebuiltTask,
    authored: Any,
    outputs: Mapping[str, Any],
    inputs: Mapping[str, Any] | None,
    image: Any,
    retries: Any,
    flyte_options: dict[str, Any],
) -> None:
    """Initialise ``task`` from an authoring task (its validated config and name; its default image)."""
    config = PrebuiltConfig(authored.executor, model=authored.config)
    PrebuiltTask.__init__(
        task,
        name=authored.name,
        interface=_interface(inputs, outputs),
        image=image if image is not None else authored.image,
        retries=retries,
        plugin_config=config,
        **flyte_options,
    )


class SQLiteTask(PrebuiltTask):
    """A query on a SQLite file (task type ``sqlite``), as :class:`taskbox.authoring.SQLiteTask`.

    Args:
        name: Task name.
        query_template: The query, with ``{{ .inputs.name }}`` placeholders (kept as written).
        uri: The database file: a path in the image or any storage URI.
        compressed: The file is a zip/tar archive holding one database.
        inputs: Input name -> Python type.
        outputs: Output name -> Python type; default ``{"results": flyte.io.DataFrame}``. Primitive outputs
            take the columns of a single-row result.
        identifiers: Input name -> allowed identifiers, for inputs that name tables or columns.
        image: Container image (default: the catalog's ``sqlite`` image).
        retries: Flyte retries (an int or ``flyte.RetryStrategy``).
        **options: Flyte task options (:data:`FLYTE_OPTIONS`: ``cache``, ``resources``, ``timeout``...) and the
            other fields of :class:`taskbox.executors.sqlite.SQLiteConfig` (``timeout_seconds``...).

    Raises:
        TypeError: ``query_template`` or ``uri`` is missing.
        ConfigError: The configuration does not validate (each field's problem is listed).
    """

    def __init__(
        self,
        name: str,
        query_template: str | None = None,
        *,
        uri: str | None = None,
        compressed: bool = False,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        identifiers: Mapping[str, list[str]] | None = None,
        image: Any = None,
        retries: Any = 0,
        **options: Any,
    ) -> None:
        if _rebuilding(options):
            PrebuiltTask.__init__(self, name=name, image=image, retries=retries, **options)
            return
        _required(type(self), query_template=query_template, uri=uri)
        assert query_template is not None and uri is not None
        from taskbox.authoring.sql import SQLiteTask as Authored

        flyte_options, config = _split(options)
        authored = Authored(name, query_template, uri=uri, compressed=compressed, outputs={},
                            identifiers=identifiers, image=_image_ref(image), **config)  # fmt: skip
        _init_from(self, authored, _sql_outputs(outputs), inputs, image, retries, flyte_options)


class SQLTask(PrebuiltTask):
    """A query on a SQLAlchemy database (task type ``sqlalchemy``), as :class:`taskbox.authoring.SQLTask`.

    Args:
        name: Task name.
        query_template: The query, with ``{{ .inputs.name }}`` placeholders (kept as written).
        uri: SQLAlchemy URL without a password (``postgresql://reader@db:5432/sales``, ``sqlite:///x.db``).
        connect_args: Driver connect arguments (no credentials).
        secret_connect_args: Driver arguments from Flyte secrets: ``{"password": {"group": "db", "key":
            "password"}}``; requested in the task's security context.
        read_only: Run in a read-only transaction (default); ``False`` commits writes.
        inputs: Input name -> Python type.
        outputs: As for :class:`SQLiteTask`; ``{}`` for a statement that returns nothing.
        identifiers: Input name -> allowed identifiers.
        image: Container image (default: the catalog's ``sql`` image).
        retries: Flyte retries (timeouts and lost connections are recoverable).
        **options: Flyte task options (:data:`FLYTE_OPTIONS`) and the other fields of
            :class:`taskbox.executors.sql.SQLConfig`.

    Raises:
        TypeError: ``query_template`` or ``uri`` is missing.
        ConfigError: The configuration does not validate (each field's problem is listed).
    """

    def __init__(
        self,
        name: str,
        query_template: str | None = None,
        *,
        uri: str | None = None,
        connect_args: Mapping[str, Any] | None = None,
        secret_connect_args: Mapping[str, Any] | None = None,
        read_only: bool = True,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        identifiers: Mapping[str, list[str]] | None = None,
        image: Any = None,
        retries: Any = 0,
        **options: Any,
    ) -> None:
        if _rebuilding(options):
            PrebuiltTask.__init__(self, name=name, image=image, retries=retries, **options)
            return
        _required(type(self), query_template=query_template, uri=uri)
        assert query_template is not None and uri is not None
        from taskbox.authoring.sql import SQLTask as Authored

        flyte_options, config = _split(options)
        authored = Authored(name, query_template, uri=uri, connect_args=connect_args,
                            secret_connect_args=secret_connect_args, read_only=read_only, outputs={},
                            identifiers=identifiers, image=_image_ref(image), **config)  # fmt: skip
        _init_from(self, authored, _sql_outputs(outputs), inputs, image, retries, flyte_options)


class HTTPTask(PrebuiltTask):
    """One HTTP request whose response parts become the outputs (``http``), as :class:`taskbox.authoring.HTTPTask`.

    Args:
        name: Task name.
        url: URL template with ``{{ .inputs.x }}`` placeholders.
        method: HTTP method.
        inputs: Input name -> Python type.
        outputs: Output name -> Python type.
        output_pointers: Output name -> JSON pointer into the response (the config's ``outputs``).
        image: Container image (default: the catalog's ``http`` image).
        retries: Flyte retries (recoverable failures: 5xx, timeouts).
        **options: Flyte task options (:data:`FLYTE_OPTIONS`) and the other fields of
            :class:`taskbox.http.config.HTTPConfig` (``headers``, ``json_body``, ``secret_headers``, ``auth``,
            ``pagination``, ``status_output``...).

    Raises:
        TypeError: ``url`` is missing.
        ConfigError: The configuration does not validate (each field's problem is listed).
    """

    def __init__(
        self,
        name: str,
        url: str | None = None,
        *,
        method: str = "GET",
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        output_pointers: Mapping[str, str] | None = None,
        image: Any = None,
        retries: Any = 0,
        **options: Any,
    ) -> None:
        if _rebuilding(options):
            PrebuiltTask.__init__(self, name=name, image=image, retries=retries, **options)
            return
        _required(type(self), url=url)
        assert url is not None
        from taskbox.authoring.http import HTTPTask as Authored

        flyte_options, config = _split(options)
        with config_errors("http"):
            authored = Authored(name, url, method=method, output_pointers=output_pointers, image=_image_ref(image),
                                **config)  # fmt: skip
        _init_from(self, authored, dict(outputs or {}), inputs, image, retries, flyte_options)


class HTTPJobTask(PrebuiltTask):
    """A job behind a submit / poll / cancel HTTP API (``http-job``), as :class:`taskbox.authoring.HTTPJobTask`.

    The job's handle is recorded in the run's checkpoint, so a retried attempt resumes the job instead of
    submitting a second one (in a cluster, and in local runs, where each task call keeps its own checkpoint).
    Cancelling the run (or its timeout) cancels the job.

    Args:
        name: Task name.
        submit_url: URL template of the submit request (``{{ .inputs.x }}`` placeholders).
        status_url: URL template polled for the state (``{{ .job.<field> }}``, ``{{ .inputs.x }}``).
        submit_method: Method of the submit request.
        json_body: JSON body template of the submit request.
        form_body: Form body template of the submit request.
        submit_headers: Headers of the submit request only.
        inputs: Input name -> Python type.
        outputs: Output name -> Python type.
        output_pointers: Output name -> JSON pointer into the final status (or ``result_url``) response.
        image: Container image (default: the catalog's ``http`` image).
        retries: Flyte retries.
        **options: Flyte task options (:data:`FLYTE_OPTIONS`) and the other fields of
            :class:`taskbox.http.jobconfig.HTTPJobConfig` (``job_fields``, ``cancel_url``, ``states``...).

    Raises:
        TypeError: ``submit_url`` or ``status_url`` is missing.
        ConfigError: The configuration does not validate (each field's problem is listed).
    """

    def __init__(
        self,
        name: str,
        *,
        submit_url: str | None = None,
        status_url: str | None = None,
        submit_method: str = "POST",
        json_body: Any = None,
        form_body: Mapping[str, Any] | None = None,
        submit_headers: Mapping[str, str] | None = None,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        output_pointers: Mapping[str, str] | None = None,
        image: Any = None,
        retries: Any = 0,
        **options: Any,
    ) -> None:
        if _rebuilding(options):
            PrebuiltTask.__init__(self, name=name, image=image, retries=retries, **options)
            return
        _required(type(self), submit_url=submit_url, status_url=status_url)
        assert submit_url is not None and status_url is not None
        from taskbox.authoring.http_job import HTTPJobTask as Authored

        flyte_options, config = _split(options)
        with config_errors("http-job"):
            authored = Authored(name, submit_url=submit_url, status_url=status_url, submit_method=submit_method,
                                json_body=json_body, form_body=form_body, submit_headers=submit_headers,
                                output_pointers=output_pointers, image=_image_ref(image), **config)  # fmt: skip
        _init_from(self, authored, dict(outputs or {}), inputs, image, retries, flyte_options)


def _image_ref(image: Any) -> str | None:
    """The authoring classes take a reference string; a ``flyte.Image`` is passed through by its URI."""
    if image is None or isinstance(image, str):
        return image
    return _image_uri(image)
