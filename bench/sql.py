"""SQL benchmark: a query to Parquet by taskbox's executors and by flytekit's, side by side.

Datasets: an ``items`` table (id, name, score, created, flag) of 1,000,000 rows, in a SQLite file and in
a throwaway PostgreSQL 15 server (tests/sql/dbservers.py, on 127.0.0.1). Each case selects the first N
rows (N = 100,000 and 1,000,000, a bound input) into a StructuredDataset: taskbox with
``taskbox execute`` (``sqlite`` / ``sql`` executors), flytekit with ``pyflyte-execute`` and its
``SQLite3TaskExecutor`` / ``SQLAlchemyTaskExecutor`` (flytekitplugins-sqlalchemy, psycopg2) on the same
template. Every run is a fresh process; each run's Parquet row count is checked.

Targets: taskbox at least 3x faster than flytekit (time ratio <= 0.33) and its peak RSS flat in the
row count (the 1M-row run within 1.5x of the 100k-row run).

The common small query (:func:`bench_small_query`, ``bench/run.py --only sql-small``): flytekit's
``SQLite3Task`` template with ``compressed=True`` reading 1,000 rows of a zipped 100k-row file, where
fixed costs (imports, extraction, the file check) dominate; target at most 1/4 of flytekit's time.

Use from bench/run.py::

    import sql as sql_bench
    results = sql_bench.bench_sql(work, flytekit_venv, runs)          # list[Measurement]
    summaries = sql_bench.report_sql(results)                          # printed, list[dict]

or standalone: ``python bench/sql.py [--flytekit-venv .venv-flytekit] [--runs 3] [--rows 100000 1000000]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _bench_run() -> Any:
    """bench/run.py (``measure``, ``Measurement``, ``report``), imported on use so run.py can import this module."""
    import run

    return run


DEFAULT_ROWS = (100_000, 1_000_000)
TIME_TARGET = 1 / 3  # taskbox's time at most a third of flytekit's
FLAT_MEMORY = 1.5  # taskbox's 1M-row peak RSS at most 1.5x its 100k-row peak RSS
QUERY = "SELECT id, name, score, created, flag FROM items WHERE id <= {{ .inputs.n }} ORDER BY id"
SECRET_ENV = "_FSEC_DB_PASSWORD"
FLYTEKIT_RESOLVER = "flytekit.core.python_customized_container_task.default_task_template_resolver"


def _servers() -> Any:
    name = "taskbox_sql_test_servers"
    module = sys.modules.get(name)
    if module is None:
        sys.path.insert(0, str(ROOT / "tests"))  # dbservers imports free_port from tests/servers.py
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "sql" / "dbservers.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def make_sqlite(path: Path, rows: int) -> str:
    """The ``items`` table with ``rows`` rows in a SQLite file."""
    if path.exists():
        path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, score REAL, created TEXT, flag INTEGER)")
    conn.execute(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
        "INSERT INTO items SELECT i, 'name-' || i, i / 4.0, datetime('2026-01-01', '+' || i || ' minutes'), i % 2 "
        "FROM s",
        (rows,),
    )
    conn.commit()
    conn.close()
    return str(path)


def seed_postgres(server: Any, rows: int) -> None:
    """The ``items`` table with ``rows`` rows in the server's application database."""
    mod = _servers()
    with server.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS items")
        conn.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, name text, score numeric(12,2), created timestamptz, "
            "flag boolean)"
        )
        conn.execute(
            "INSERT INTO items SELECT i, 'name-' || i, i / 4.0, "
            "timestamptz '2026-01-01 00:00+00' + i * interval '1 minute', i %% 2 = 0 "
            "FROM generate_series(1, %s) AS i",
            (rows,),
        )
        conn.execute(f"ALTER TABLE items OWNER TO {mod.USER}")
        conn.execute("ANALYZE items")


def _template(task_type: str, custom: dict[str, Any], executor_args: list[str]) -> bytes:
    from flyteidl.core import interface_pb2, tasks_pb2, types_pb2
    from google.protobuf import struct_pb2

    int_type = types_pb2.LiteralType(simple=types_pb2.INTEGER)
    schema = types_pb2.LiteralType(schema=types_pb2.SchemaType())
    template = tasks_pb2.TaskTemplate(
        type=task_type,
        interface=interface_pb2.TypedInterface(
            inputs=interface_pb2.VariableMap(variables={"n": interface_pb2.Variable(type=int_type)}),
            outputs=interface_pb2.VariableMap(variables={"results": interface_pb2.Variable(type=schema)}),
        ),
        container=tasks_pb2.Container(image="bench", args=executor_args),
    )
    template.id.name = f"bench.{task_type}"
    struct = struct_pb2.Struct()
    struct.update(custom)
    template.custom.CopyFrom(struct)
    return template.SerializeToString()


def _inputs(n: int) -> bytes:
    from flyteidl.core import literals_pb2

    lm = literals_pb2.LiteralMap()
    lm.literals["n"].scalar.primitive.integer = n
    return lm.SerializeToString()


def _parquet_checker(prefix: Path, raw: Path, expected: int):
    import shutil

    from flyteidl.core import literals_pb2

    def check(stage: str) -> None:
        if stage == "reset":
            shutil.rmtree(prefix, ignore_errors=True)
            shutil.rmtree(raw, ignore_errors=True)
            return
        if (prefix / "error.pb").exists() or not (prefix / "outputs.pb").exists():
            raise SystemExit(f"run under {prefix} did not commit outputs.pb")
        lm = literals_pb2.LiteralMap()
        lm.ParseFromString((prefix / "outputs.pb").read_bytes())
        uri = lm.literals["results"].scalar.structured_dataset.uri
        import pyarrow.parquet as pq

        files = [p for p in Path(uri.removeprefix("file://")).rglob("*") if p.is_file()]
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in files)
        if rows != expected:
            raise SystemExit(f"run under {prefix} wrote {rows} rows, expected {expected}")

    return check


def _case(
    name: str,
    work: Path,
    template: bytes,
    n: int,
    argv_head: list[str],
    runs: int,
    env: dict[str, str],
    tail: list[str],
) -> Any:
    case, argv, prefix, raw = _prepare(work, name, template, n, argv_head, tail)
    return _bench_run().measure(name, argv, runs, _parquet_checker(prefix, raw, n), cwd=str(case), env=env)


def _prepare(
    work: Path, name: str, template: bytes, n: int, argv_head: list[str], tail: list[str]
) -> tuple[Path, list[str], Path, Path]:
    """Write a case's task.pb and inputs.pb under ``work``; return its directory, argv, prefix and raw dir."""
    case = work / "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    case.mkdir(parents=True, exist_ok=True)
    (case / "task.pb").write_bytes(template)
    (case / "inputs.pb").write_bytes(_inputs(n))
    prefix, raw = case / "out", case / "raw"
    argv = [
        *argv_head,
        "--inputs",
        str(case / "inputs.pb"),
        "--output-prefix",
        str(prefix),
        "--raw-output-data-prefix",
        str(raw),
        "--resolver",
        *tail[:1],
        "--",
        str(case / "task.pb"),
        *tail[1:],
    ]
    return case, argv, prefix, raw


def bench_sql(work: Path, flytekit_venv: Path, runs: int, rows: Sequence[int] = DEFAULT_ROWS) -> list[Any]:
    """Measure taskbox and flytekit querying SQLite and PostgreSQL to Parquet.

    Args:
        work: A scratch directory (databases and outputs go here).
        flytekit_venv: The virtual environment with flytekit and flytekitplugins-sqlalchemy.
        runs: Measured runs per command (after one warm-up).
        rows: Row counts to query (the tables hold the largest).

    Returns:
        ``bench/run.py`` ``Measurement``\\ s, named ``"<tool> <db> <rows>"``
        (e.g. ``"taskbox sqlite 1000000"``, ``"flytekit postgres 100000"``).
    """
    pyflyte = flytekit_venv / "bin" / "pyflyte-execute"
    if not pyflyte.exists():
        raise SystemExit(f"{pyflyte} is missing: run `make flytekit-venv`")
    taskbox = str(Path(sys.executable).with_name("taskbox"))
    largest = max(rows)
    work.mkdir(parents=True, exist_ok=True)
    db = make_sqlite(work / "items.db", largest)
    mod = _servers()
    server = mod.start_postgres()
    results: list[Any] = []
    try:
        seed_postgres(server, largest)
        base_env = dict(
            os.environ,
            FLYTE_INTERNAL_EXECUTION_ID="bench",
            FLYTE_INTERNAL_EXECUTION_PROJECT="p",
            FLYTE_INTERNAL_EXECUTION_DOMAIN="d",
            TASKBOX_CACHE_DIR=str(work / "cache"),
            **{SECRET_ENV: mod.PASSWORD},
        )
        pg_uri = server.url.replace("postgresql+psycopg://", "postgresql://")
        sqlite_custom = {"query_template": QUERY, "uri": db, "compressed": False}
        pg_custom = {
            "query_template": QUERY,
            "uri": pg_uri,
            "connect_args": {},
            "secret_connect_args": {"password": {"group": "db", "key": "password", "mount_requirement": 0}},
        }
        cases = [
            ("sqlite", "sqlite", sqlite_custom, "flytekit.extras.sqlite3.task.SQLite3TaskExecutor"),
            ("postgres", "sqlalchemy", pg_custom, "flytekitplugins.sqlalchemy.task.SQLAlchemyTaskExecutor"),
        ]
        for db_name, task_type, custom, fk_executor in cases:
            template = _template(task_type, custom, [])
            for n in rows:
                results.append(
                    _case(
                        f"taskbox {db_name} {n}",
                        work,
                        template,
                        n,
                        [taskbox, "execute"],
                        runs,
                        base_env,
                        ["taskbox.template"],
                    )
                )
                results.append(
                    _case(
                        f"flytekit {db_name} {n}",
                        work,
                        template,
                        n,
                        [str(pyflyte)],
                        runs,
                        base_env,
                        [FLYTEKIT_RESOLVER, fk_executor],
                    )
                )
    finally:
        server.stop()
    return results


SMALL_TABLE_ROWS = 100_000
SMALL_QUERY_ROWS = 1_000
SMALL_TIME_TARGET = 1 / 4  # the common small query: at most a quarter of flytekit's time (issue 15 item 8)


def make_zipped_sqlite(work: Path, rows: int) -> Path:
    """The ``items`` table with ``rows`` rows in a SQLite file, zipped (flytekit's ``compressed=True``)."""
    import zipfile

    db = Path(make_sqlite(work / "small-items.db", rows))
    archive = work / "small-items.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(db, arcname="items.db")
    db.unlink()
    return archive


def bench_small_query(work: Path, flytekit_venv: Path, runs: int, baseline_src: Path | None = None) -> list[Any]:
    """flytekit's ``SQLite3Task`` template reading 1,000 rows from a zipped 100k-row database, both sides in turns.

    Every run is a fresh process; taskbox's download cache (``TASKBOX_CACHE_DIR``) persists across runs, as
    it does across task starts in one container, so the archive is extracted and checked once per version.
    ``baseline_src``: another checkout's ``src`` measured in the same turns (before/after).
    """
    run = _bench_run()
    pyflyte = flytekit_venv / "bin" / "pyflyte-execute"
    if not pyflyte.exists():
        raise SystemExit(f"{pyflyte} is missing: run `make flytekit-venv`")
    taskbox = str(Path(sys.executable).with_name("taskbox"))
    work.mkdir(parents=True, exist_ok=True)
    archive = make_zipped_sqlite(work, SMALL_TABLE_ROWS)
    template = _template("sqlite", {"query_template": QUERY, "uri": str(archive), "compressed": True}, [])
    env = dict(
        os.environ,
        FLYTE_INTERNAL_EXECUTION_ID="bench",
        FLYTE_INTERNAL_EXECUTION_PROJECT="p",
        FLYTE_INTERNAL_EXECUTION_DOMAIN="d",
    )
    sides = [
        ("taskbox sqlite small", [taskbox, "execute"], ["taskbox.template"], {"TASKBOX_CACHE_DIR": str(work / "cache")})
    ]
    if baseline_src is not None:
        sides.append(
            (
                "taskbox sqlite small (baseline)",
                [taskbox, "execute"],
                ["taskbox.template"],
                {"TASKBOX_CACHE_DIR": str(work / "cache-baseline"), "PYTHONPATH": str(baseline_src)},
            )
        )
    sides.append(
        (
            "flytekit sqlite small",
            [str(pyflyte)],
            [FLYTEKIT_RESOLVER, "flytekit.extras.sqlite3.task.SQLite3TaskExecutor"],
            {},
        )
    )
    cases = []
    for name, head, tail, extra_env in sides:
        case, argv, prefix, raw = _prepare(work, name, template, SMALL_QUERY_ROWS, head, tail)
        cases.append(
            run.Case(name, argv, _parquet_checker(prefix, raw, SMALL_QUERY_ROWS), str(case), {**env, **extra_env})
        )
    return run.measure_interleaved(cases, runs)


def report_small_query(results: list[Any]) -> dict[str, Any]:
    """Print the small-query table and its target (taskbox at most a quarter of flytekit's time)."""
    return _bench_run().report(
        f"SQL sqlite: {SMALL_QUERY_ROWS:,} rows from a zipped {SMALL_TABLE_ROWS:,}-row database (SQLite3Task template)",
        results,
        ("taskbox sqlite small", "flytekit sqlite small", SMALL_TIME_TARGET),
    )


def report_sql(results: list[Any]) -> list[dict[str, Any]]:
    """Print one table per database and row count with the time target, plus the flat-memory check."""
    summaries = []
    by_name = {m.name: m for m in results}
    keys = sorted({tuple(m.name.split()[1:]) for m in results}, key=lambda k: (k[0], int(k[1])))
    largest = max(int(k[1]) for k in keys)
    for db_name, n in keys:
        pair = [by_name[f"taskbox {db_name} {n}"], by_name[f"flytekit {db_name} {n}"]]
        # The time target is for the full table (the 1M rows); smaller counts are reported beside it,
        # where start-up (imports, the check of the file) weighs more.
        target = (pair[0].name, pair[1].name, TIME_TARGET) if int(n) == largest else None
        summary = _bench_run().report(f"SQL {db_name}: {int(n):,} rows to Parquet", pair, target)
        if target is None:
            ratio = pair[0].median_ms / pair[1].median_ms
            print(f"ratio taskbox/flytekit: time {ratio:.3f} (reported; the target applies at {largest:,} rows)")
            summary["ratio"] = ratio
        summaries.append(summary)
    for db_name in sorted({k[0] for k in keys}):
        sizes = sorted(int(k[1]) for k in keys if k[0] == db_name)
        if len(sizes) < 2:
            continue
        small, large = by_name[f"taskbox {db_name} {sizes[0]}"], by_name[f"taskbox {db_name} {sizes[-1]}"]
        fk_small, fk_large = by_name[f"flytekit {db_name} {sizes[0]}"], by_name[f"flytekit {db_name} {sizes[-1]}"]
        growth = large.rss_mib / small.rss_mib
        met = growth <= FLAT_MEMORY
        print(
            f"peak RSS {db_name} {sizes[0]:,} -> {sizes[-1]:,} rows: "
            f"taskbox {small.rss_mib:.0f} -> {large.rss_mib:.0f} MiB "
            f"(x{growth:.2f}, target <= {FLAT_MEMORY}: {'met' if met else 'NOT MET'}), "
            f"flytekit {fk_small.rss_mib:.0f} -> {fk_large.rss_mib:.0f} MiB "
            f"(x{fk_large.rss_mib / fk_small.rss_mib:.2f})"
        )
        summaries.append(
            {
                "title": f"SQL {db_name}: memory growth {sizes[0]} -> {sizes[-1]} rows",
                "ratio": growth,
                "target": FLAT_MEMORY,
                "met": met,
            }
        )
    return summaries


def main() -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flytekit-venv", default=str(ROOT / ".venv-flytekit"), type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS))
    parser.add_argument("--json", type=Path, help="also write the results here")
    ns = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    _bench_run().compile_sources()
    with tempfile.TemporaryDirectory(prefix="taskbox-bench-sql-") as tmp:
        results = bench_sql(Path(tmp), ns.flytekit_venv.resolve(), ns.runs, ns.rows)
    summaries = report_sql(results)
    if ns.json:
        ns.json.write_text(json.dumps(summaries, indent=2))
    return 0 if all(s.get("met", True) for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
