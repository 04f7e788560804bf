"""Cold start of a user task from a code bundle: ``taskbox fast-execute`` vs flytekit's ``pyflyte-fast-execute``.

What runs (each a fresh process, like a container start; bench/run.py's ``measure``):

* taskbox: ``taskbox fast-execute --additional-distribution file://B --dest-dir D -- taskbox execute
  --inputs ... --resolver taskbox.function -- task-module bench_fast_task task-name echo``, where B is
  made by ``taskbox bundle``. Measured twice: with a fresh ``D`` every run (download, validate,
  extract, then run) and warm (``D`` already holds the extracted bundle: a marker check).
* flytekit 1.16.31 (``.venv-flytekit``): ``pyflyte-fast-execute --additional-distribution file://F
  --dest-dir D -- pyflyte-execute ... --resolver flytekit.core.python_auto_container.default_task_resolver
  -- task-module flyte_fast_task task-name echo``, where F is a fast-register style ``fast<md5>.tar.gz``
  of the equivalent flytekit module (flytekit downloads and untars on every start, then forks a second
  interpreter; ``D`` must exist, so it is recreated empty before each run).

Both bundles hold the task module plus the same filler package (a small project: 30 modules). Both run
from a working directory that does not hold the module, so the task can only come from the bundle.
Every run's ``outputs.pb`` is decoded and checked. Target: taskbox's first run (with extraction) under
1/10 of flytekit's.

Run alone: ``python bench/fast_execute.py [--runs 9]``; or ``python bench/run.py --only fast-execute``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET = 0.10
FLYTEKIT_RESOLVER = "flytekit.core.python_auto_container.default_task_resolver"
FILLER_MODULES = 30

TASKBOX_FUNCTION_MODULE = '''"""The taskbox side of the fast-execute bench: flytekit's trivial task, in taskbox."""

import taskbox


@taskbox.task
def echo(x: int) -> int:
    return x
'''

FLYTEKIT_MODULE = '''"""The flytekit side of the fast-execute bench (same as bench/peers/flyte_trivial.py)."""

from flytekit import task


@task
def echo(x: int) -> int:
    return x
'''


def _bench_run() -> Any:
    """bench/run.py (``measure``, ``report``, ``_outputs_checker``), imported on use (run.py imports us)."""
    import run

    return run


def _write_filler(root: Path) -> None:
    pkg = root / "helpers_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Filler: a small project\'s other modules."""\n')
    body = "".join(f"def f{j}(x):\n    return x + {j}\n\n\n" for j in range(40))
    for i in range(FILLER_MODULES):
        (pkg / f"m{i:02d}.py").write_text(f'"""Module {i}."""\n\n{body}')


def make_sources(work: Path) -> tuple[Path, Path]:
    """Write the taskbox and flytekit source trees; return their roots."""
    tb, fk = work / "src-taskbox", work / "src-flytekit"
    for root in (tb, fk):
        _write_filler(root)
    (tb / "bench_fast_task.py").write_text(TASKBOX_FUNCTION_MODULE)
    (fk / "flyte_fast_task.py").write_text(FLYTEKIT_MODULE)
    return tb, fk


def flytekit_style_bundle(src: Path, out_dir: Path) -> Path:
    """A fast-register style ``fast<md5>.tar.gz``: the tree's files at the archive's top level."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "fast-tmp.tar.gz"
    with tarfile.open(tmp, "w:gz") as tf:
        for path in sorted(src.rglob("*")):
            tf.add(path, arcname=str(path.relative_to(src)), recursive=False)
    digest = hashlib.md5(tmp.read_bytes()).hexdigest()
    final = out_dir / f"fast{digest}.tar.gz"
    tmp.rename(final)
    return final


def _inputs(work: Path) -> Path:
    from flyteidl.core import literals_pb2

    inputs = literals_pb2.LiteralMap()
    inputs.literals["x"].scalar.primitive.integer = 42
    path = work / "inputs.pb"
    path.write_bytes(inputs.SerializeToString())
    return path


def _checker(prefix: Path, dest: Path, *, fresh_dest: bool, recreate: bool):
    outputs = _bench_run()._outputs_checker(prefix, 42)

    def check(stage: str) -> None:
        outputs(stage)
        if stage == "reset" and fresh_dest:
            shutil.rmtree(dest, ignore_errors=True)
            if recreate:
                dest.mkdir(parents=True)

    return check


def bench_fast_execute(work: Path, flytekit_venv: Path, runs: int) -> list[Any]:
    """Measure the three commands (taskbox first run, taskbox warm, flytekit)."""
    run = _bench_run()
    work.mkdir(parents=True, exist_ok=True)
    tb_src, fk_src = make_sources(work)
    taskbox = str(Path(sys.executable).with_name("taskbox"))
    bundle = subprocess.run(
        [taskbox, "bundle", str(tb_src), "--to", str(work / "store")], capture_output=True, text=True, check=True
    ).stdout.strip()
    fk_bundle = flytekit_style_bundle(fk_src, work / "fk-store")
    inputs = _inputs(work)
    cwd = work / "cwd"
    cwd.mkdir()

    resolver = ["--resolver", "taskbox.function", "--", "task-module", "bench_fast_task", "task-name", "echo"]
    cases = []
    for name, fresh in (("taskbox fast-execute (extract)", True), ("taskbox fast-execute (warm)", False)):
        dest, out = work / ("tb-dest-fresh" if fresh else "tb-dest-warm"), work / "tb-out"
        argv = [taskbox, "fast-execute", "--additional-distribution", f"file://{bundle}", "--dest-dir", str(dest),
                "--", "taskbox", "execute", "--inputs", str(inputs), "--output-prefix", str(out),
                "--raw-output-data-prefix", str(work / "tb-raw"), "--checkpoint-path", "{{.checkpointOutputPrefix}}",
                "--prev-checkpoint", '""', *resolver]  # fmt: skip
        cases.append(run.Case(name, argv, _checker(out, dest, fresh_dest=fresh, recreate=False), cwd=str(cwd)))

    pyflyte = flytekit_venv / "bin" / "pyflyte-fast-execute"
    if not pyflyte.exists():
        raise SystemExit(f"{pyflyte} is missing: run `make flytekit-venv`")
    path = os.pathsep.join([str(flytekit_venv / "bin"), os.environ.get("PATH", "")])
    env = dict(os.environ, FLYTE_INTERNAL_EXECUTION_ID="bench", FLYTE_INTERNAL_EXECUTION_PROJECT="p",
               FLYTE_INTERNAL_EXECUTION_DOMAIN="d", PATH=path)  # fmt: skip
    fk_dest, fk_out = work / "fk-dest", work / "fk-out"
    argv = [str(pyflyte), "--additional-distribution", f"file://{fk_bundle}", "--dest-dir", str(fk_dest), "--",
            "pyflyte-execute", "--inputs", str(inputs), "--output-prefix", str(fk_out), "--raw-output-data-prefix",
            str(work / "fk-raw"), "--checkpoint-path", "{{.checkpointOutputPrefix}}", "--prev-checkpoint", '""',
            "--resolver", FLYTEKIT_RESOLVER, "--", "task-module", "flyte_fast_task", "task-name", "echo"]  # fmt: skip
    cases.append(
        run.Case(
            "flytekit pyflyte-fast-execute (extract)",
            argv,
            _checker(fk_out, fk_dest, fresh_dest=True, recreate=True),
            cwd=str(cwd),
            env=env,
        )  # fmt: skip
    )
    return run.measure_interleaved(cases, runs)  # in turns: load on a shared machine falls on every side


def report_fast_execute(results: list[Any]) -> dict[str, Any]:
    """Print the table with the target on the first run (both sides extract), plus the warm ratio."""
    run = _bench_run()
    extract, warm, peer = results
    summary = run.report("fast-execute: whole cold start from a code bundle (local storage)", results,
                         (extract.name, peer.name, TARGET))  # fmt: skip
    warm_ratio = warm.median_ms / peer.median_ms
    print(f"warm (bundle already extracted) / flytekit: {warm_ratio:.3f}")
    summary["warm_ratio"] = warm_ratio
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flytekit-venv", default=str(ROOT / ".venv-flytekit"), type=Path)
    parser.add_argument("--runs", type=int, default=9)
    ns = parser.parse_args()
    import tempfile

    _bench_run().compile_sources()
    with tempfile.TemporaryDirectory(prefix="taskbox-bench-fx-") as tmp:
        results = bench_fast_execute(Path(tmp), ns.flytekit_venv.resolve(), ns.runs)
    return 0 if report_fast_execute(results)["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
