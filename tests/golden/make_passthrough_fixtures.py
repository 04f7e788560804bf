"""Write pass-through golden fixtures with flytekit: an identity task's input and output literals.

Run with flytekit's interpreter (``make golden`` runs every ``tests/golden/make_*.py`` with it)::

    .venv-flytekit/bin/python tests/golden/make_passthrough_fixtures.py [--out tests/golden/passthrough]

For every case flytekit serializes an identity task ``def identity(x: T) -> T``, converts the value to its
input literal with ``TypeEngine`` and runs the task (``dispatch_execute``, as ``pyflyte-execute`` does).
Written per case: ``<case>.type.pb`` (the declared ``LiteralType``), ``<case>.input.pb`` (the input
``Literal``) and ``<case>.output.pb`` (the ``Literal`` flytekit's task returned), plus ``manifest.json``.
tests/literals/test_passthrough_golden.py runs each input through taskbox's ``echo`` executor and
expects flytekit's output literal, byte for byte where flytekit is deterministic.

What the cases pin down (issue 18):
    * a union of two struct types (two dataclasses; a dataclass and a pydantic model with the same
      fields) keeps the variant the input recorded, alone, in lists and maps, under Optional;
    * ``Literal.hash`` that flytekit's ``HashMethod`` set survives a pass-through, top level and on
      every element of a collection or a map.

The script imports nothing from taskbox: it must run in flytekit's environment only.
"""

# ruff: noqa: UP006, UP007, UP035, UP045 - typing.List/Optional/Union spelled out on purpose

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from typing_extensions import Annotated

FLYTEKIT_VERSION = "1.16.31"


@dataclasses.dataclass
class Leaf:
    value: int
    label: str = "leaf"


@dataclasses.dataclass
class Branch:
    name: str
    leaves: List[Leaf] = dataclasses.field(default_factory=list)


def _digest(value: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def identity(x):  # type: ignore[no-untyped-def]
    """The task under test; its annotations are set per case before flytekit wraps it."""
    return x


class Case(typing.NamedTuple):
    name: str
    python_type: Any
    value: Any


def cases() -> List[Case]:
    from flytekit.core.hash import HashMethod

    out = [
        Case("union_structs_first", Union[Leaf, Branch], Leaf(value=1, label="one")),
        Case("union_structs_second", Union[Leaf, Branch], Branch(name="b", leaves=[Leaf(value=2)])),
        Case("optional_union_structs", Optional[Union[Leaf, Branch]], Branch(name="o")),
        Case("optional_union_none", Optional[Union[Leaf, Branch]], None),
        Case(
            "list_union_structs",
            List[Union[Leaf, Branch]],
            [Leaf(value=1), Branch(name="x"), Branch(name="y", leaves=[Leaf(value=3)]), Leaf(value=2, label="t")],
        ),
        Case("dict_union_structs", Dict[str, Union[Leaf, Branch]], {"a": Branch(name="a"), "b": Leaf(value=5)}),
        Case("union_list_structs", Union[List[Leaf], List[Branch]], [Branch(name="z")]),
        Case("hashed_int", Annotated[int, HashMethod(lambda x: f"int-{x}")], 42),
        Case("hashed_str", Annotated[str, HashMethod(_digest)], "hashed ✓"),
        Case("hashed_dict", Annotated[Dict[str, int], HashMethod(_digest)], {"b": 2, "a": 1}),
        Case("hashed_elements", List[Annotated[int, HashMethod(lambda x: f"element-{x}")]], [3, 1, 2]),
        Case(
            "hashed_values",
            Dict[str, Annotated[List[str], HashMethod(_digest)]],
            {"x": ["1"], "y": ["2", "3"]},
        ),
    ]
    pydantic_case = _pydantic_case()
    if pydantic_case is not None:
        out.append(pydantic_case)
    return out


def _pydantic_case() -> Optional[Case]:
    try:
        import pydantic
    except ImportError:
        print("skipping union_dataclass_pydantic: pydantic is not installed", file=sys.stderr)
        return None

    class PLeaf(pydantic.BaseModel):
        value: int
        label: str = "leaf"

    globals()["PLeaf"] = PLeaf  # flytekit resolves the model's class by module path when it reads it back
    PLeaf.__module__ = __name__
    return Case("union_dataclass_pydantic", Union[Leaf, PLeaf], PLeaf(value=4, label="p"))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "passthrough"))
    args = parser.parse_args(argv)

    import flytekit
    from flytekit.core.base_task import kwtypes  # noqa: F401 - flytekit's public helpers load the plugins
    from flytekit.core.context_manager import ExecutionState, FlyteContextManager
    from flytekit.core.python_function_task import PythonFunctionTask
    from flytekit.core.task import TaskMetadata
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import LiteralMap

    if flytekit.__version__ != FLYTEKIT_VERSION:
        print(f"warning: fixtures are specified for flytekit {FLYTEKIT_VERSION}, running {flytekit.__version__}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest: Dict[str, Any] = {"flytekit": flytekit.__version__, "cases": {}}
    for case in cases():
        cache = getattr(TypeEngine, "_LITERAL_CACHE", None)
        if cache is not None:
            cache.clear()

        identity.__annotations__ = {"x": case.python_type, "return": case.python_type}
        task = PythonFunctionTask(task_config=None, task_function=identity, metadata=TaskMetadata())
        ctx = FlyteContextManager.current_context()
        lt = TypeEngine.to_literal_type(case.python_type)
        literal = TypeEngine.to_literal(ctx, case.value, case.python_type, lt)
        state = ctx.new_execution_state().with_params(mode=ExecutionState.Mode.TASK_EXECUTION)
        with FlyteContextManager.with_context(ctx.with_execution_state(state)) as exec_ctx:
            result = task.dispatch_execute(exec_ctx, LiteralMap(literals={"x": literal}))
        output = result.literals["o0"]
        declared = task.interface.outputs["o0"].type
        assert declared == lt, f"{case.name}: flytekit declares {declared} for the output, {lt} for the input"
        files = {
            "type": f"{case.name}.type.pb",
            "input": f"{case.name}.input.pb",
            "output": f"{case.name}.output.pb",
        }
        (out / files["type"]).write_bytes(lt.to_flyte_idl().SerializeToString(deterministic=True))
        (out / files["input"]).write_bytes(literal.to_flyte_idl().SerializeToString(deterministic=True))
        (out / files["output"]).write_bytes(output.to_flyte_idl().SerializeToString(deterministic=True))
        manifest["cases"][case.name] = {
            **files,
            "python_type": re.sub(r" object at 0x[0-9a-f]+", "", repr(case.python_type)),
            "input_hash": literal.hash or "",
            "output_hash": output.hash or "",
        }
        print(f"wrote {case.name}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
