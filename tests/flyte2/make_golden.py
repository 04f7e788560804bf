"""Write the Flyte 2 golden fixtures: what flyte 2.12's SDK serializes for the cases of v2cases.py.

Run inside ``.venv-flyte2`` (``make flyte2-golden``)::

    .venv-flyte2/bin/python tests/flyte2/make_golden.py [--out tests/flyte2/golden]

Per case (only those whose bytes do not depend on the machine: no files, directories or tables, whose
literals name temporary paths): ``<case>.inputs.pb`` (``convert_from_native_to_inputs``),
``<case>.interface.pb`` (the task's ``TypedInterface`` from ``translate_task_to_wire``) and
``<case>.args.json`` (its container args). tests/flyte2/test_golden.py checks that today's SDK still writes
these bytes and that taskbox runs them without the SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sdk_tool  # noqa: E402

#: The cases whose fixtures are machine-independent.
GOLDEN_CASES = (
    "int", "str", "float", "bool", "datetime", "list", "dict", "dataclass", "pydantic", "enum",
    "optional-none", "optional-set", "union-int", "union-str", "pickled",
)  # fmt: skip


def write(out: pathlib.Path) -> None:
    """Write every golden case's fixtures into ``out``."""
    import base64

    out.mkdir(parents=True, exist_ok=True)
    for case in GOLDEN_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = asyncio.run(sdk_tool._prepare(case, tmp))
            (out / f"{case}.inputs.pb").write_bytes(pathlib.Path(tmp, "inputs.pb").read_bytes())
        (out / f"{case}.interface.pb").write_bytes(base64.b64decode(prepared["interface"]))
        (out / f"{case}.args.json").write_text(json.dumps(prepared["args"], indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "golden")
    write(parser.parse_args().out)


if __name__ == "__main__":
    main()
