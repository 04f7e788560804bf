"""Cold start under Flyte 2's ``a0``: ``taskbox a0`` with the echo executor vs the flyte SDK's own ``a0``.

What runs (each a fresh process, like a container start; bench/run.py's ``measure_interleaved``):

* taskbox: ``taskbox a0 --inputs I --outputs-path O ... --resolver taskbox.flyte2.PrebuiltTaskResolver
  template <encoded echo template>`` (the args taskbox.flyte2 tasks serialize; no flyte SDK involved).
* flyte 2.12 (``.venv-flyte2``, ``make flyte2-venv``): ``a0 ... --resolver
  flyte._internal.resolvers.default.DefaultTaskResolver mod flyte2_trivial instance echo`` for an
  ``@env.task async def echo(x: int) -> int`` (bench/peers/flyte2_trivial.py).

Both read the same ``inputs.pb`` (``x = 42``; v2's ``Inputs`` has v1 ``LiteralMap``'s wire shape) and every
run's ``outputs.pb`` is checked. Target: taskbox at most 1/10 of flyte's time.

Run alone: ``python bench/run.py --only a0``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.10
FLYTE_RESOLVER = "flyte._internal.resolvers.default.DefaultTaskResolver"


def _bench_run() -> Any:
    import run

    return run


def bench_a0(work: Path, flyte2_venv: Path, runs: int) -> list[Any]:
    """Measure ``taskbox a0`` (echo) and flyte's ``a0`` (trivial task), taking turns."""
    from flyteidl.core import interface_pb2, literals_pb2, tasks_pb2, types_pb2

    from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, a0_args, encode_template

    run = _bench_run()
    flyte_a0 = flyte2_venv / "bin" / "a0"
    if not flyte_a0.exists():
        raise SystemExit(f"{flyte_a0} is missing: run `make flyte2-venv`")
    work.mkdir(parents=True, exist_ok=True)
    int_type = types_pb2.LiteralType(simple=types_pb2.SimpleType.INTEGER)
    variables = interface_pb2.VariableMap(variables={"x": interface_pb2.Variable(type=int_type)})
    template = tasks_pb2.TaskTemplate(
        type="echo", interface=interface_pb2.TypedInterface(inputs=variables, outputs=variables)
    )
    inputs = literals_pb2.LiteralMap()
    inputs.literals["x"].scalar.primitive.integer = 42
    (work / "inputs.pb").write_bytes(inputs.SerializeToString())
    env = dict(
        os.environ,
        FLYTE_INTERNAL_EXECUTION_PROJECT="p",
        FLYTE_INTERNAL_EXECUTION_DOMAIN="d",
        _U_ORG_NAME="o",
        _U_RUN_BASE=str(work / "run-base"),
    )
    cases = []
    for name, head, resolver, resolver_args, cwd in (
        (
            "taskbox a0 (echo)",
            [str(Path(sys.executable).with_name("taskbox"))],
            PREBUILT_RESOLVER,
            ["template", encode_template(template.SerializeToString())],
            str(work),
        ),
        ("flyte a0 (trivial task)", [str(flyte_a0)], FLYTE_RESOLVER, ["mod", "flyte2_trivial", "instance", "echo"],
         str(ROOT / "bench" / "peers")),
    ):  # fmt: skip
        out = work / name.split()[0]
        out.mkdir(exist_ok=True)
        args = a0_args(resolver, resolver_args, version="v1")
        values = {
            "{{.input}}": str(work / "inputs.pb"),
            "{{.outputPrefix}}": str(out),
            "{{.rawOutputDataPrefix}}": str(work / "raw"),
            "{{.runName}}": "r1",
            "{{.actionName}}": "a1",
        }
        argv = [*head, *[values.get(a, a) for a in (args if head[0].endswith("taskbox") else args[1:])]]
        cases.append(run.Case(name, argv, _checker(run, out), cwd, env))
    return run.measure_interleaved(cases, runs)


def _checker(run: Any, out: Path) -> Any:
    """bench/run.py's outputs check, with the output directory recreated after each reset (flyte's local
    writes do not create it)."""
    inner = run._outputs_checker(out, 42)

    def check(stage: str) -> None:
        inner(stage)
        if stage == "reset":
            out.mkdir(parents=True, exist_ok=True)

    return check


def report_a0(results: list[Any]) -> dict[str, Any]:
    """Print the table and the target (taskbox at most 1/10 of flyte's time)."""
    return _bench_run().report(
        "cold start under Flyte 2's a0: echo (taskbox) vs a trivial task (flyte 2.12)",
        results,
        ("taskbox a0 (echo)", "flyte a0 (trivial task)", TARGET),
    )
