"""``make demo``: run a real task through ``taskbox execute`` on local storage and print its outputs.

It writes a TaskTemplate and an inputs.pb the way Flyte's propeller would, runs the entrypoint exactly
as a container would (the installed ``taskbox`` console script, Flyte's container args), then decodes
the committed ``outputs.pb``. Everything lands in ``demo-out/`` for a closer look with ``taskbox inspect``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

from flyteidl.core import interface_pb2, tasks_pb2, types_pb2

from taskbox.literals import ConversionContext, literal_map_to_python, python_to_literal_map

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"


def simple(kind: str) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(simple=types_pb2.SimpleType.Value(kind))


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    types = {
        "greeting": simple("STRING"),
        "count": simple("INTEGER"),
        "when": simple("DATETIME"),
        "scores": types_pb2.LiteralType(map_value_type=simple("FLOAT")),
    }
    variables = interface_pb2.VariableMap(variables={k: interface_pb2.Variable(type=t) for k, t in types.items()})
    template = tasks_pb2.TaskTemplate(
        type="echo", interface=interface_pb2.TypedInterface(inputs=variables, outputs=variables)
    )
    template.id.name = "demo.echo"
    (OUT / "task.pb").write_bytes(template.SerializeToString())
    ctx = ConversionContext(raw_output_prefix=str(OUT / "raw"), working_dir=str(OUT))
    values = {
        "greeting": "hello from taskbox",
        "count": 3,
        "when": dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc),
        "scores": {"alpha": 0.5, "beta": 1.25},
    }
    (OUT / "inputs.pb").write_bytes(python_to_literal_map(values, types, ctx).SerializeToString())

    args = [
        str(Path(sys.executable).with_name("taskbox")), "execute",
        "--inputs", str(OUT / "inputs.pb"),
        "--output-prefix", str(OUT / "outputs"),
        "--raw-output-data-prefix", str(OUT / "raw"),
        "--resolver", "taskbox.template", "--", str(OUT / "task.pb"),
    ]
    print("$ " + " ".join(args[1:]).replace(str(ROOT) + "/", ""))
    proc = subprocess.run(args, check=False)
    if proc.returncode != 0 or not (OUT / "outputs" / "outputs.pb").exists():
        print(f"demo failed (exit {proc.returncode}); see {OUT / 'outputs'}", file=sys.stderr)
        return 1
    from flyteidl.core import literals_pb2

    committed = literals_pb2.LiteralMap()
    committed.ParseFromString((OUT / "outputs" / "outputs.pb").read_bytes())
    print(f"\noutputs committed to {OUT.relative_to(ROOT)}/outputs/outputs.pb:")
    for name, value in literal_map_to_python(committed, types, ctx).items():
        print(f"  {name} = {value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
