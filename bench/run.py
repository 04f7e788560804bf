"""taskbox's benchmarks, side by side with the peer (flytekit) in one run, reported as ratios.

Usage: ``make bench`` (creates .venv and .venv-flytekit first), or
``python bench/run.py --flytekit-venv .venv-flytekit [--runs 9] [--json out.json]``.

Each command is run as a fresh process (a task start is a fresh container), ``--runs`` times after one
warm-up run (so both sides read their bytecode from the page cache, as a warm node would), the two sides
of a ratio taking turns (so load on a shared machine falls on both); we report
the median and minimum wall time and the median peak RSS (``ru_maxrss`` of the child). Every run's
output is checked, so a fast failure can never pass for a fast success.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

COLD_START_TARGET = 1 / 15  # taskbox's whole run at most 1/15 of flytekit's (issue 15 item 8)


@dataclass
class Measurement:
    name: str
    median_ms: float
    min_ms: float
    rss_mib: float
    runs: int
    cpu_ms: float = 0.0  # median user + system CPU time of the child: less sensitive to load than wall time


GNU_TIME = "/usr/bin/time"


@dataclass
class Case:
    """One command to measure: ``check("reset")`` runs before and ``check("verify")`` after every run."""

    name: str
    argv: list[str]
    check: object
    cwd: str | None = None
    env: dict | None = None


def _run_once(case: Case, rss_path: str) -> tuple[float, float, float]:
    """Run ``case`` once under GNU time; return (wall ms, peak RSS MiB, user + system CPU ms)."""
    case.check("reset")
    start = time.perf_counter()
    proc = subprocess.run(
        [GNU_TIME, "-f", "%M %U %S", "-o", rss_path, *case.argv],
        cwd=case.cwd,
        env=case.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{case.name} failed (exit {proc.returncode}):\n{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    case.check("verify")
    rss_kib, user_s, system_s = Path(rss_path).read_text().split()[-3:]
    return elapsed * 1000, int(rss_kib) / 1024, (float(user_s) + float(system_s)) * 1000


def measure_interleaved(cases: list[Case], runs: int) -> list[Measurement]:
    """Measure several commands in turns: one warm-up each, then ``runs`` rounds of one run per command.

    Taking turns puts both sides of a ratio under the same load: on a shared machine, measuring all of
    one side's runs and then all of the other's lets a burst of load land on one side only.
    Peak RSS comes from GNU time (``%M``): a child forked from this (large) Python process would
    inherit its memory high-water mark across ``exec``, so ``wait4``'s ``ru_maxrss`` would overstate
    small processes. GNU time is itself tiny, and its few hundred microseconds are paid by both sides.
    """
    if not os.path.exists(GNU_TIME):
        raise SystemExit(f"{GNU_TIME} is missing: run `make system-deps` (Debian package 'time')")
    times: dict[str, list[float]] = {c.name: [] for c in cases}
    rss: dict[str, list[float]] = {c.name: [] for c in cases}
    cpu: dict[str, list[float]] = {c.name: [] for c in cases}
    with tempfile.NamedTemporaryFile(prefix="taskbox-bench-rss-") as rss_file:
        for case in cases:
            _run_once(case, rss_file.name)  # warm-up: bytecode and data in the page cache
        for _ in range(runs):
            for case in cases:
                wall, peak, used = _run_once(case, rss_file.name)
                times[case.name].append(wall)
                rss[case.name].append(peak)
                cpu[case.name].append(used)
    return [
        Measurement(
            c.name,
            statistics.median(times[c.name]),
            min(times[c.name]),
            statistics.median(rss[c.name]),
            runs,
            statistics.median(cpu[c.name]),
        )
        for c in cases
    ]


def measure(name: str, argv: list[str], runs: int, check, cwd: str | None = None, env=None) -> Measurement:
    """Run ``argv`` ``runs`` times (after one warm-up) and measure wall time and peak RSS."""
    return measure_interleaved([Case(name, argv, check, cwd, env)], runs)[0]


def _no_check(stage: str) -> None:
    return None


def _outputs_checker(prefix: Path, expected: int):
    from flyteidl.core import literals_pb2

    def check(stage: str) -> None:
        if stage == "reset":
            shutil.rmtree(prefix, ignore_errors=True)
            return
        if (prefix / "error.pb").exists() or not (prefix / "outputs.pb").exists():
            raise SystemExit(f"run under {prefix} did not commit outputs.pb")
        lm = literals_pb2.LiteralMap()
        lm.ParseFromString((prefix / "outputs.pb").read_bytes())
        value = next(iter(lm.literals.values())).scalar.primitive.integer
        if value != expected:
            raise SystemExit(f"run under {prefix} produced {value}, expected {expected}")

    return check


def bench_cold_start(work: Path, flytekit_venv: Path, runs: int, baseline_src: Path | None = None) -> list[Measurement]:
    """Cold start of the entrypoint: taskbox execute (echo) vs pyflyte-execute (trivial task).

    ``baseline_src``: another checkout's ``src`` (e.g. ``git archive HEAD src``), measured in the same turns as
    ``taskbox execute (echo, baseline)``, for a before/after figure on a busy machine.
    """
    from flyteidl.core import interface_pb2, literals_pb2, tasks_pb2, types_pb2

    int_type = types_pb2.LiteralType(simple=types_pb2.SimpleType.INTEGER)
    variables = interface_pb2.VariableMap(variables={"x": interface_pb2.Variable(type=int_type)})
    template = tasks_pb2.TaskTemplate(
        type="echo", interface=interface_pb2.TypedInterface(inputs=variables, outputs=variables)
    )
    (work / "task.pb").write_bytes(template.SerializeToString())
    inputs = literals_pb2.LiteralMap()
    inputs.literals["x"].scalar.primitive.integer = 42
    (work / "inputs.pb").write_bytes(inputs.SerializeToString())

    python = sys.executable
    taskbox = str(Path(python).with_name("taskbox"))
    pyflyte = flytekit_venv / "bin" / "pyflyte-execute"
    if not pyflyte.exists():
        raise SystemExit(f"{pyflyte} is missing: run `make flytekit-venv`")
    out, fk_out = work / "taskbox-out", work / "flytekit-out"
    env = dict(
        os.environ,
        FLYTE_INTERNAL_EXECUTION_ID="bench",
        FLYTE_INTERNAL_EXECUTION_PROJECT="p",
        FLYTE_INTERNAL_EXECUTION_DOMAIN="d",
    )
    cases = [
        Case("python -c pass", [python, "-c", "pass"], _no_check),
        Case(
            "taskbox execute (echo)",
            [
                taskbox,
                "execute",
                "--inputs",
                str(work / "inputs.pb"),
                "--output-prefix",
                str(out),
                "--raw-output-data-prefix",
                str(work / "raw"),
                "--resolver",
                "taskbox.template",
                "--",
                str(work / "task.pb"),
            ],
            _outputs_checker(out, 42),
        ),
        Case(
            "flytekit pyflyte-execute (trivial @task)",
            [
                str(pyflyte),
                "--inputs",
                str(work / "inputs.pb"),
                "--output-prefix",
                str(fk_out),
                "--raw-output-data-prefix",
                str(work / "fk-raw"),
                "--resolver",
                "flytekit.core.python_auto_container.default_task_resolver",
                "--",
                "task-module",
                "flyte_trivial",
                "task-name",
                "echo",
            ],
            _outputs_checker(fk_out, 42),
            cwd=str(ROOT / "bench" / "peers"),
            env=env,
        ),
    ]
    if baseline_src is not None:
        base_out = work / "baseline-out"
        cases.insert(
            2,
            Case(
                "taskbox execute (echo, baseline)",
                [
                    taskbox,
                    "execute",
                    "--inputs",
                    str(work / "inputs.pb"),
                    "--output-prefix",
                    str(base_out),
                    "--raw-output-data-prefix",
                    str(work / "raw"),
                    "--resolver",
                    "taskbox.template",
                    "--",
                    str(work / "task.pb"),
                ],
                _outputs_checker(base_out, 42),
                env=dict(os.environ, PYTHONPATH=str(baseline_src)),
            ),
        )
    return measure_interleaved(cases, runs)


def report(title: str, results: list[Measurement], target: tuple[str, str, float] | None = None) -> dict:
    print(f"\n== {title}")
    print(f"{'command':<44} {'median ms':>10} {'min ms':>9} {'peak RSS MiB':>13} {'CPU ms':>8}")
    for m in results:
        print(f"{m.name:<44} {m.median_ms:>10.1f} {m.min_ms:>9.1f} {m.rss_mib:>13.1f} {m.cpu_ms:>8.0f}")
    summary: dict = {"title": title, "results": [asdict(m) for m in results]}
    if target:
        ours, peer, limit = target
        a = next(m for m in results if m.name == ours)
        b = next(m for m in results if m.name == peer)
        ratio, rss_ratio = a.median_ms / b.median_ms, a.rss_mib / b.rss_mib
        met = ratio <= limit
        print(
            f"ratio taskbox/flytekit: time {ratio:.3f} (target <= {limit:.3f}: {'met' if met else 'NOT MET'}), "
            f"peak RSS {rss_ratio:.2f}"
        )
        summary.update(ratio=ratio, rss_ratio=rss_ratio, target=limit, met=met)
        if b.cpu_ms:
            print(f"CPU time taskbox/flytekit (reported; the target is on wall time): {a.cpu_ms / b.cpu_ms:.3f}")
            summary.update(cpu_ratio=a.cpu_ms / b.cpu_ms)
        base = next((m for m in results if m.name != ours and "baseline" in m.name), None)
        if base is not None:
            print(
                f"baseline (--baseline-src) taskbox/flytekit: time {base.median_ms / b.median_ms:.3f}"
                + (f", CPU {base.cpu_ms / b.cpu_ms:.3f}" if b.cpu_ms else "")
            )
            summary.update(baseline_ratio=base.median_ms / b.median_ms)
    return summary


def compile_sources(*extra: Path) -> None:
    """Compile taskbox's sources to bytecode, as pip does for installed packages and the images do.

    The editable install in .venv serves ``src/`` directly; with ``PYTHONDONTWRITEBYTECODE=1`` (set on
    these machines) every start would otherwise recompile taskbox from source, which no deployed
    taskbox does. flytekit's site-packages were compiled by pip when it was installed.
    """
    import compileall

    for src in (ROOT / "src", *extra):
        if not compileall.compile_dir(str(src / "taskbox"), quiet=1):
            raise SystemExit(f"could not compile taskbox's sources in {src}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flytekit-venv", default=str(ROOT / ".venv-flytekit"), type=Path)
    parser.add_argument("--flyte2-venv", default=str(ROOT / ".venv-flyte2"), type=Path)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--only",
        choices=("cold-start", "a0", "fast-execute", "sql", "sql-small", "http", "image"),
        action="append",
        help="run only these benchmarks",
    )
    parser.add_argument("--sql-runs", type=int, default=3, help="runs per SQL case (each moves up to 1M rows)")
    parser.add_argument("--baseline-src", type=Path, help="also measure the taskbox in this src/ (before/after)")
    ns = parser.parse_args()
    selected = set(ns.only or ("cold-start", "a0", "fast-execute", "sql-small", "sql", "http", "image"))
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    baseline = ns.baseline_src.resolve() if ns.baseline_src else None
    compile_sources(*([baseline] if baseline else []))
    summaries = []
    with tempfile.TemporaryDirectory(prefix="taskbox-bench-") as tmp:
        work = Path(tmp)
        if "cold-start" in selected:
            cold = bench_cold_start(work, ns.flytekit_venv.resolve(), ns.runs, baseline)
            summaries.append(
                report(
                    "cold start: whole run on local storage",
                    cold,
                    ("taskbox execute (echo)", "flytekit pyflyte-execute (trivial @task)", COLD_START_TARGET),
                )
            )
        if "a0" in selected:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import flyte2 as flyte2_bench

            a0_results = flyte2_bench.bench_a0(work / "a0", ns.flyte2_venv.resolve(), ns.runs)
            summaries.append(flyte2_bench.report_a0(a0_results))
        if "fast-execute" in selected:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import fast_execute as fast_execute_bench

            fx_results = fast_execute_bench.bench_fast_execute(
                work / "fast-execute", ns.flytekit_venv.resolve(), ns.runs
            )
            summaries.append(fast_execute_bench.report_fast_execute(fx_results))
        if "sql-small" in selected:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import sql as sql_bench

            small = sql_bench.bench_small_query(work / "sql-small", ns.flytekit_venv.resolve(), ns.runs, baseline)
            summaries.append(sql_bench.report_small_query(small))
        if "sql" in selected:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import sql as sql_bench

            sql_work = work / "sql"
            sql_work.mkdir()
            summaries.extend(
                sql_bench.report_sql(sql_bench.bench_sql(sql_work, ns.flytekit_venv.resolve(), ns.sql_runs))
            )
        if "http" in selected:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import http_tasks

            print("\n== http: 1,000 sequential small GET tasks through the http executor (local server)")
            summaries.append({"title": "http", "runs": http_tasks.bench_http(work / "http", 3)})
        if "image" in selected:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import images as images_bench

            summaries.append(
                report(
                    "cold start: the sqlite image (docker run to exit) on flytekit's SQLite3Task",
                    images_bench.bench_image_cold_start(work, ns.flytekit_venv.resolve(), ns.runs),
                )
            )
    if ns.json:
        ns.json.write_text(json.dumps(summaries, indent=2))
    return 0 if all(s.get("met", True) for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
