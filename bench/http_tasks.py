"""HTTP benchmark: 1,000 sequential small GET tasks through the ``http`` executor against a local server.

Each task is one ``HTTPExecutor.execute`` call (config validated once, as the entrypoint does per run)
against a threaded HTTP/1.1 server on 127.0.0.1 (tests/http/httptesting.py) answering a small JSON
document, mapped to two outputs by JSON pointers. The baseline is a bare ``httpx.Client.get`` + JSON
parse on one reused connection; the difference is taskbox's overhead per call (templating, guard,
client setup, output mapping). Connection reuse within a run is checked on a paginated task: its
pages must share one TCP connection.

Use from bench/run.py (``import http_tasks``; the file is not called ``http.py`` because that would
shadow the standard library's ``http`` package on ``sys.path``)::

    rows = http_tasks.bench_http(work, runs)    # list[dict], one per run (also printed)

or standalone: ``python bench/http_tasks.py [--runs 3] [--tasks 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, bench/ is sys.path[0] and this file would shadow the standard library's http package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if sys.modules.get("http") is not None and getattr(sys.modules["http"], "__file__", "") == __file__:
    del sys.modules["http"]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "http"))

TASKS = 1000


def _one_run(work: Path, tasks: int) -> dict[str, Any]:
    import httptesting
    import httpx

    from helpers import simple
    from taskbox.context import ExecutionContext
    from taskbox.executors.base import validate_config
    from taskbox.executors.http import HTTPExecutor

    server = httptesting.start()
    try:
        os.environ["TASKBOX_HTTP_ALLOW"] = "127.0.0.1"
        config = validate_config(
            HTTPExecutor, {"url": server.base + "/json", "outputs": {"id": "/id", "name": "/name"}}
        )
        types = {"id": simple("INTEGER"), "name": simple("STRING")}
        context = ExecutionContext(str(work / "out"), str(work / "raw"), str(work / "wd"), output_types=types)
        executor = HTTPExecutor()
        task_times = []
        for _ in range(tasks):
            start = time.perf_counter()
            out = executor.execute(context, config, {})
            task_times.append(time.perf_counter() - start)
            assert out == {"id": 42, "name": "widget"}
        base_times = []
        with httpx.Client(trust_env=False) as client:
            for _ in range(tasks):
                start = time.perf_counter()
                doc = json.loads(client.get(server.base + "/json").content)
                base_times.append(time.perf_counter() - start)
                assert doc["id"] == 42
        before = server.connections
        paged = validate_config(
            HTTPExecutor,
            {
                "url": server.base + "/pages/link",
                "pagination": {"next": "link", "items_pointer": "/items", "output": "all"},
            },
        )
        ctx = ExecutionContext(
            str(work / "out"), str(work / "raw"), str(work / "wd"), output_types={"all": simple("STRUCT")}
        )
        executor.execute(ctx, paged, {})
        pages_connections = server.connections - before
    finally:
        server.shutdown()
        server.server_close()
    return {
        "tasks": tasks,
        "executor_total_s": sum(task_times),
        "executor_p50_ms": statistics.median(task_times) * 1000,
        "executor_p99_ms": sorted(task_times)[int(len(task_times) * 0.99) - 1] * 1000,
        "baseline_p50_ms": statistics.median(base_times) * 1000,
        "overhead_per_call_ms": (statistics.median(task_times) - statistics.median(base_times)) * 1000,
        "connections_for_3_pages": pages_connections,
    }


def bench_http(work: Path, runs: int, tasks: int = TASKS) -> list:
    """Run the benchmark ``runs`` times; return one summary dict per run (plus a printed table)."""
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(runs):
        row = {"benchmark": "http", "run": i + 1, **_one_run(work / f"run{i}", tasks)}
        rows.append(row)
        print(
            f"http run {i + 1}: {row['tasks']} GET tasks in {row['executor_total_s']:.2f} s executor time; "
            f"p50 {row['executor_p50_ms']:.2f} ms (bare httpx {row['baseline_p50_ms']:.2f} ms, overhead "
            f"{row['overhead_per_call_ms']:.2f} ms/call), p99 {row['executor_p99_ms']:.2f} ms; "
            f"3 pages over {row['connections_for_3_pages']} connection(s)"
        )
    return rows


def main() -> None:
    """Standalone entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/taskbox-bench-http"))
    ns = parser.parse_args()
    bench_http(ns.work, ns.runs, ns.tasks)


if __name__ == "__main__":
    main()
