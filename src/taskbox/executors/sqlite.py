"""The ``sqlite`` executor: run one query against a SQLite database file fetched from any storage URI.

Why: flytekit's ``SQLite3Task`` runs a query on a database file without a container of the author's
own, but pastes input values into the SQL, unpacks archives with ``shutil.unpack_archive`` and reads
the whole result into pandas. This executor runs the same templates (``custom`` = ``query_template``,
``uri``, ``compressed``) with bound parameters, a validated archive, a read-only untrusted connection
and a streamed Parquet result.

Invariants:
    * The template is compiled (and rejected if unsafe) before the database is fetched.
    * The database file is opened read-only and untrusted (see :mod:`taskbox.sql.sqlite`); it is
      cached for later runs in the same container, and a cached copy that fails validation is dropped.
      A file with a write-ahead log or journal beside it is read through a private snapshot in the
      working directory (:mod:`taskbox.sql.sqlite_snapshot`), which both paths below read.
    * A table result is written by the ADBC driver in a child process when the driver is installed
      (:mod:`taskbox.sql.sqlite_arrow`, about 2.5x faster), after the statement passed the same
      authorizer; whatever that path cannot reproduce exactly runs through :mod:`sqlite3`.
    * Nothing is written to the outputs on failure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from taskbox.executors.base import Executor
from taskbox.sql.config import QueryConfig, query_outputs

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext

__all__ = ["SQLiteConfig", "SQLiteExecutor"]

log = logging.getLogger("taskbox.sql")


class SQLiteConfig(QueryConfig):
    """``custom`` of a ``sqlite`` template: flytekit's ``SQLite3Task`` fields plus taskbox's limits.

    Attributes:
        uri: Where the database file is: a path in the image, or any storage URI (s3, gs, abfs, http(s)).
        compressed: The file is a zip or tar archive holding exactly one database file.
        allow_triggers: Accept a database file that defines triggers (refused by default).
        max_download_bytes: Largest file downloaded.
        max_database_bytes: Largest database unpacked from an archive.

    """

    uri: str = Field(min_length=1)
    compressed: bool = False
    allow_triggers: bool = False
    max_download_bytes: int = Field(default=8 * 1024**3, ge=1)
    max_database_bytes: int = Field(default=8 * 1024**3, ge=1)


def quote_identifier(name: str) -> str:
    """SQLite's quoting of an identifier: always double quotes, embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


class SQLiteExecutor(Executor):
    """Runs a query template against a read-only copy of a SQLite database."""

    task_type = "sqlite"
    Config = SQLiteConfig
    summary = "runs one query on a SQLite file from any storage URI; results as Parquet or one row"
    requires = ("sqlglot", "pyarrow")  # adbc-driver-sqlite is optional (the sqlite3 path reads without it)

    @classmethod
    def infer_outputs(
        cls, config: Mapping[str, Any], inputs: Mapping[str, Any], declared: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return the declared outputs, or else one table named ``results``."""
        return query_outputs(declared)

    def execute(self, context: ExecutionContext, config: SQLiteConfig, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Fetch the database, run the query, and map the result onto the declared outputs."""
        import sqlite3

        from taskbox.sql import errors
        from taskbox.sql.archives import ArchiveLimits
        from taskbox.sql.compiled_cache import compile_cached as compile_template
        from taskbox.sql.outputs import OutputPlan, collect
        from taskbox.sql.results import CursorSource
        from taskbox.sql.sqlite import DatabaseCache, FetchLimits, fetch_database, open_read_only

        plan = OutputPlan.from_types(context.output_types)
        compiled = compile_template(
            config.query_template, _input_names(context, inputs), dialect="sqlite", identifiers=config.identifiers
        )
        if compiled.kind == "write":
            raise errors.ReadOnlyViolation(
                f"the statement is a {compiled.statement or 'write'}, which changes data; a SQLite task's database "
                "is opened read-only"
            )
        sql, params = compiled.render(inputs, quote=quote_identifier, style="sqlite")
        limits = FetchLimits(
            max_download_bytes=config.max_download_bytes,
            archive=ArchiveLimits(max_bytes=config.max_database_bytes),
        )
        cache = DatabaseCache()
        database = fetch_database(
            config.uri, compressed=config.compressed, working_dir=context.working_dir, limits=limits, cache=cache
        )
        try:
            conn = open_read_only(
                database.path,
                check=not database.checked,
                allow_triggers=config.allow_triggers,
                snapshot_dir=context.working_dir,
            )
        except errors.DatabaseRejected:
            database.discard()
            raise
        if not conn.snapshot:  # a snapshot's check says nothing about the file alone
            database.mark_checked()
        log.info("running query: %s", sql)
        try:
            with conn.deadline(config.timeout_seconds, context.cancelled):
                fast = _fast_path(conn, conn.path, sql, params, config, plan, context)
                if fast is not None:
                    outputs, publish = fast
                else:
                    cursor = conn.conn.execute(sql, params)
                    columns = [d[0] for d in cursor.description or ()]
                    if plan.kind != "none" and not cursor.description:
                        raise errors.ResultShapeError("the statement returns no rows, but the task declares outputs")
                    outputs, publish = collect(
                        CursorSource(columns, cursor.fetchmany),
                        plan,
                        raw_output_prefix=context.raw_output_prefix,
                        working_dir=context.working_dir,
                        batch_rows=config.batch_rows,
                        cancelled=context.cancelled,
                    )
                    cursor.close()
        except sqlite3.Error as exc:
            raise errors.translate(exc) from None
        finally:
            conn.close()
        publish()
        return outputs


def _fast_path(
    conn: Any,
    path: str,
    sql: str,
    params: Mapping[str, Any],
    config: SQLiteConfig,
    plan: Any,
    context: ExecutionContext,
) -> tuple[dict[str, Any], Any] | None:
    """Write a table result through the ADBC driver (:mod:`taskbox.sql.sqlite_arrow`); only for table outputs.

    Returns:
        ``(outputs, publish)`` as :func:`taskbox.sql.outputs.collect` does, or ``None`` when the query
        must run through :mod:`sqlite3` (the driver is missing, or the fast path cannot reproduce the
        reference behaviour for this query; it then left nothing behind).

    """
    import time

    from taskbox.sql import sqlite_arrow
    from taskbox.sql.outputs import collect

    if plan.kind != "table" or not sqlite_arrow.available():
        return None
    deadline = time.monotonic() + config.timeout_seconds
    conn.check_statement(sql, params)  # authorizer, names and parameters: errors come from sqlite3, as usual

    def reference() -> Any:
        cursor = conn.conn.execute(sql, params)
        try:
            return sqlite_arrow.reference_schema(cursor, [d[0] for d in cursor.description or ()])
        finally:
            cursor.close()

    def write(staging: str) -> tuple[int, list[str]]:
        rows, columns = sqlite_arrow.stream_to_parquet(
            path,
            sql,
            params,
            staging,
            reference=reference,
            deadline=deadline,
            timeout_seconds=config.timeout_seconds,
            cancelled=context.cancelled,
            batch_rows=config.batch_rows,
        )
        if not columns:
            raise sqlite_arrow.Unsupported("the statement returns no columns")
        log.info("the ADBC driver wrote %d rows", rows)
        return rows, columns

    try:
        return collect(
            None,
            plan,
            raw_output_prefix=context.raw_output_prefix,
            working_dir=context.working_dir,
            cancelled=context.cancelled,
            write=write,
        )
    except sqlite_arrow.Unsupported as exc:
        log.debug("the query runs through sqlite3: %s", exc or "not supported by the fast path")
        return None


def _input_names(context: ExecutionContext, inputs: Mapping[str, Any]) -> list[str]:
    """Return the task's declared inputs (from the template's interface when there is one)."""
    template = context.template
    names = list(template.interface.inputs.variables) if template is not None else []
    return names + [n for n in inputs if n not in names]
