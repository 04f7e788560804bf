"""The ``sql`` executor: run one query against any SQLAlchemy database (task type ``sqlalchemy``).

Why: flytekit's ``SQLAlchemyTask`` pastes input values into the SQL, keeps the password in the URI
(and logs it), commits whatever the query does and reads the whole result into pandas. This executor
runs the same templates (``custom`` = ``query_template``, ``uri``, ``connect_args``,
``secret_connect_args``) with bound parameters, secrets only from Flyte's secret store, a read-only
transaction by default for taskbox's own tasks, a statement timeout, and a streamed Parquet result
(server-side cursors on PostgreSQL and MySQL/MariaDB).

Invariants:
    * A URI with a password, or a password in ``connect_args``, is refused: credentials come from
      ``secret_connect_args`` (Flyte secrets), so they are never in the template, and are registered
      for redaction before use. The URL is logged only with its password hidden.
    * Read-only mode makes the transaction read-only in the database and never commits; statements
      sqlglot classifies as writes are refused before connecting, and so are constructs a read-only
      transaction does not contain (server files and programs: ``lo_export``, ``INTO OUTFILE``,
      ``COPY``...; see :func:`taskbox.sql.dialects.read_only_hazard`), named in the error.
    * Whether a run is read-only (:func:`read_only_mode`): ``TASKBOX_SQL_READ_ONLY`` set true in the
      container makes every run read-only; else the template's ``read_only`` decides; else a template
      flytekit's ``SQLAlchemyTask`` serialized (:func:`is_flytekit_template`) commits, as flytekit
      does, and every other one is read-only. A template cannot lift the container's setting through
      its own ``container.env``.
    * Read-only mode never creates or changes a file: a ``sqlite://`` database is opened ``mode=ro`` and
      must exist.
    * Driver failures are translated by :func:`taskbox.sql.errors.translate`; nothing is written to
      the outputs on failure; a Parquet result is published only after the transaction has ended.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from taskbox.errors import ConfigError
from taskbox.executors.base import Executor
from taskbox.sql.config import QueryConfig, SecretRef, query_outputs

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext

__all__ = ["SQLConfig", "SQLExecutor", "is_flytekit_template", "read_only_mode"]

log = logging.getLogger("taskbox.sql")

#: connect_args keys that hold credentials; they must come from secret_connect_args.
CREDENTIAL_ARGS = frozenset({"password", "passwd", "pwd", "pass", "sslpassword", "passfile", "token", "secret"})
DEFAULT_CONNECT_TIMEOUT_S = 30
#: The ``custom`` fields flytekit's ``SQLAlchemyTask.get_custom`` writes, and its executor's class path.
FLYTEKIT_FIELDS = frozenset({"query_template", "uri", "connect_args", "secret_connect_args"})
FLYTEKIT_EXECUTOR = "flytekitplugins.sqlalchemy.task.SQLAlchemyTaskExecutor"
#: The container setting that makes every run read-only.
READ_ONLY_SETTING = "TASKBOX_SQL_READ_ONLY"


class SQLConfig(QueryConfig):
    """``custom`` of a ``sqlalchemy`` template: flytekit's ``SQLAlchemyTask`` fields plus taskbox's.

    Attributes:
        uri: A SQLAlchemy URL *without* a password (``postgresql://user@host:5432/db``).
        connect_args: Extra keyword arguments for the driver's ``connect()`` (no credentials).
        secret_connect_args: Driver arguments taken from Flyte secrets, e.g.
            ``{"password": {"group": "db", "key": "password"}}``.
        read_only: ``true``: run in a read-only transaction that is never committed; ``false``: commit
            the statement's writes. Unset: read-only, except for a template flytekit's ``SQLAlchemyTask``
            serialized, which commits as under flytekit (see :func:`read_only_mode`).

    """

    uri: str = Field(min_length=1)
    connect_args: dict[str, Any] = Field(default_factory=dict)
    secret_connect_args: dict[str, SecretRef] | None = None
    read_only: bool | None = None

    @field_validator("uri")
    @classmethod
    def _no_password_in_uri(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("is not a SQLAlchemy database URL (dialect+driver://user@host:port/database)") from None
        if url.password or any(k.lower() in CREDENTIAL_ARGS for k in url.query):
            raise ValueError(
                "holds a password; remove it from the URI and pass it through secret_connect_args "
                '(e.g. {"password": {"group": "db", "key": "password"}}), so it never appears in the template'
            )
        return value

    @field_validator("connect_args")
    @classmethod
    def _no_credentials_in_connect_args(cls, value: dict[str, Any]) -> dict[str, Any]:
        plain = sorted(k for k in value if k.lower() in CREDENTIAL_ARGS)
        if plain:
            raise ValueError(f"holds credentials ({', '.join(plain)}); pass them through secret_connect_args")
        return value


class SQLExecutor(Executor):
    """Runs a query template on a SQLAlchemy engine."""

    task_type = "sqlalchemy"
    Config = SQLConfig
    summary = "runs one query on any SQLAlchemy database (read-only by default); results as Parquet or one row"
    requires = ("sqlglot", "sqlalchemy", "pyarrow")  # a database driver (psycopg, pymysql...) is the URI's

    @classmethod
    def infer_outputs(
        cls, config: Mapping[str, Any], inputs: Mapping[str, Any], declared: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the declared outputs, or else one table named ``results``."""
        return query_outputs(declared)

    def execute(self, context: ExecutionContext, config: SQLConfig, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Connect, run the query in one transaction, and map the result onto the declared outputs."""
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError
        from sqlalchemy.pool import NullPool

        from taskbox.sql import errors
        from taskbox.sql.dialects import begin_session, normalise_url
        from taskbox.sql.outputs import OutputPlan, collect
        from taskbox.sql.templating import compile_template, sqlglot_dialect

        url = normalise_url(make_url(config.uri))
        backend = url.get_backend_name()
        plan = OutputPlan.from_types(context.output_types)
        read_only, why = read_only_mode(config, context.template)
        compiled = compile_template(
            config.query_template,
            _input_names(context, inputs),
            dialect=sqlglot_dialect(backend),
            identifiers=config.identifiers,
        )
        if read_only and compiled.hazard:
            raise errors.ReadOnlyViolation(
                f"the statement uses {compiled.hazard}; a read-only transaction does not prevent that, so the "
                f"read-only task refuses it ({why})"
            )
        if read_only and compiled.kind == "write":
            raise errors.ReadOnlyViolation(
                f"the statement is a {compiled.statement or 'write'}, which changes data, but the task is read-only "
                f"({why})"
            )
        if not read_only:
            log.info("read-write: the statement's changes are committed (%s)", why)
        if backend == "sqlite" and read_only:
            url = _sqlite_read_only(url)
        engine = create_engine(
            url, connect_args=_connect_args(context, config, backend), poolclass=NullPool, hide_parameters=True
        )
        log.info("connecting to %s", url.render_as_string(hide_password=True))
        try:
            with engine.connect() as conn:
                enforced = begin_session(
                    conn,
                    backend,
                    read_only=read_only,
                    timeout_s=config.timeout_seconds,
                    is_mariadb=bool(getattr(engine.dialect, "is_mariadb", False)),
                )
                if read_only and not enforced and compiled.kind != "read":
                    raise errors.ReadOnlyViolation(
                        f"the {backend} database cannot run this statement in a read-only transaction and taskbox "
                        f"cannot tell that it only reads ({why})"
                    )
                result, source = _execute(conn, compiled, inputs, plan, config, backend, read_only)
                if plan.kind != "none" and source is None:
                    raise errors.ResultShapeError("the statement returns no rows, but the task declares outputs")
                outputs, publish = collect(
                    source,
                    plan,
                    raw_output_prefix=context.raw_output_prefix,
                    working_dir=context.working_dir,
                    batch_rows=config.batch_rows,
                    cancelled=context.cancelled,
                )
                result.close()
                if read_only:
                    conn.rollback()
                else:
                    conn.commit()
        except (SQLAlchemyError, engine.dialect.loaded_dbapi.Error) as exc:
            raise errors.translate(exc) from None
        finally:
            engine.dispose()
        publish()
        return outputs


def _execute(
    conn: Any, compiled: Any, inputs: Mapping[str, Any], plan: Any, config: SQLConfig, backend: str, read_only: bool
) -> Any:
    """Execute the statement; return ``(result to close, RowSource or None when it returns no rows)``.

    A table from PostgreSQL on psycopg goes through a raw server-side cursor inside SQLAlchemy's transaction
    (:mod:`taskbox.sql.postgres`); everything else through SQLAlchemy's ``text()``, streamed where the driver
    has server-side cursors.
    """
    from taskbox.sql import postgres
    from taskbox.sql.dialects import check_statement_size, stream_supported, type_hints
    from taskbox.sql.results import CursorSource

    quote = conn.dialect.identifier_preparer.quote
    raw = conn.connection.driver_connection
    if plan.kind == "table" and postgres.uses_psycopg(raw):
        sql, params = compiled.render(inputs, quote=quote, style="pyformat")
        log.info("running query (%s): %s", "read-only" if read_only else "read-write", sql)
        cursor, source = postgres.open_cursor(
            raw, sql, params, stream=compiled.kind == "read", batch_rows=config.batch_rows
        )
        return cursor, (source if cursor.description else None)
    clause, params = compiled.sqlalchemy_clause(inputs, quote=quote)
    check_statement_size(conn, backend, clause.text, params)
    log.info("running query (%s): %s", "read-only" if read_only else "read-write", clause.text)
    stream = plan.kind == "table" and compiled.kind == "read" and stream_supported(backend)
    runner = conn.execution_options(yield_per=config.batch_rows) if stream else conn
    result = runner.execute(clause, params)
    if not result.returns_rows:
        return result, None
    hints = type_hints(backend, getattr(result.cursor, "description", None))
    return result, CursorSource(list(result.keys()), result.fetchmany, hints)


def is_flytekit_template(template: Any) -> bool:
    """Tell whether flytekit's ``SQLAlchemyTask`` plugin serialized this template (so it expects flytekit's commit).

    Its fields say so: task type ``sqlalchemy``, flytekit's executor class as the container's last
    argument, and only the ``custom`` fields flytekit writes (no ``read_only`` or other taskbox field).
    taskbox's own templates (``taskbox.authoring.SQLTask``, ``taskbox.flytekit``) name taskbox's executor.

    Args:
        template: A ``flyteidl.core.tasks_pb2.TaskTemplate``, or ``None`` (``taskbox run`` without one).

    """
    if template is None or getattr(template, "type", "") != "sqlalchemy":
        return False
    args = list(template.container.args) if template.HasField("container") else []
    if not args or args[-1] != FLYTEKIT_EXECUTOR:
        return False
    fields = set(template.custom.fields) if template.HasField("custom") else set()
    return "query_template" in fields and fields <= FLYTEKIT_FIELDS


def read_only_mode(config: SQLConfig, template: Any, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Decide whether this run is read-only, and say why (the sentence ends the refusal's message).

    In order: ``TASKBOX_SQL_READ_ONLY`` true in the container makes it read-only whatever the template
    says; else the template's ``read_only``; else a template flytekit's ``SQLAlchemyTask`` serialized
    commits (flytekit's behaviour); else read-only.

    Args:
        config: The validated ``custom``.
        template: The task template, if any.
        environ: The environment (``os.environ`` if ``None``).

    Returns:
        ``(read_only, why)``.

    Raises:
        ConfigError: The setting is malformed, or the template's own ``container.env`` sets it to
            anything but a true value (a template cannot lift the image's setting).

    """
    from taskbox import settings

    own = _template_env(template).get(READ_ONLY_SETTING)
    if own is not None and own.strip().lower() not in settings.TRUTHY:
        raise ConfigError(
            f"the task template's container env sets {READ_ONLY_SETTING}={own!r}; only the image or the platform "
            "may set it (a template may only set it true). Remove it, and set read_only in the task config instead"
        )
    if settings.boolean(READ_ONLY_SETTING, environ=environ):
        return True, f"{READ_ONLY_SETTING} is set in this container, which makes every sql task read-only"
    if config.read_only is not None:
        return config.read_only, (
            "the task config sets read_only: true; set read_only: false to allow writes"
            if config.read_only
            else "the task config sets read_only: false"
        )
    if is_flytekit_template(template):
        return False, (
            f"a template of flytekit's SQLAlchemyTask commits, as under flytekit; set {READ_ONLY_SETTING}=1 in the "
            "image, or read_only: true in the template, to make it read-only"
        )
    return True, "read-only is the default; set read_only: false in the task config to allow writes"


def _template_env(template: Any) -> dict[str, str]:
    if template is None or not template.HasField("container"):
        return {}
    return {kv.key: kv.value for kv in template.container.env}


def _sqlite_read_only(url: Any) -> Any:
    """Turn the SQLite URL into a ``mode=ro`` URI, so connecting never creates the file (it must exist).

    Raises:
        QueryFailed: The file does not exist.

    """
    import os
    import pathlib

    from taskbox.sql import errors

    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in ("true", "1"):  # already a file: URI; force read-only
        return url.update_query_dict({"mode": "ro"})
    if database in ("", ":memory:"):
        return url
    path = os.path.abspath(database)
    if not os.path.isfile(path):
        raise errors.QueryFailed(
            f"the SQLite database {database!r} does not exist; a read-only task opens it read-only and never creates it"
        )
    return url.set(database=pathlib.Path(path).as_uri()).update_query_dict({"mode": "ro", "uri": "true"})


def _connect_args(context: ExecutionContext, config: SQLConfig, backend: str) -> dict[str, Any]:
    """``connect_args`` with integral floats made ints (``Struct`` numbers) and secrets filled in."""
    args: dict[str, Any] = {}
    for key, value in config.connect_args.items():
        args[key] = int(value) if isinstance(value, float) and value.is_integer() else value
    if backend == "postgresql":
        args.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)
    elif backend in ("mysql", "mariadb"):
        args.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)
        args.setdefault("read_timeout", int(config.timeout_seconds) + DEFAULT_CONNECT_TIMEOUT_S)
    for arg, ref in (config.secret_connect_args or {}).items():
        args[arg] = context.secrets.get(ref.group, ref.key, ref.group_version or None, env_var=ref.env_var)
    return args


def _input_names(context: ExecutionContext, inputs: Mapping[str, Any]) -> list[str]:
    template = context.template
    names = list(template.interface.inputs.variables) if template is not None else []
    return names + [n for n in inputs if n not in names]
