"""The ``echo`` executor: each input comes back as the output of the same name.

Why: the smallest real plugin. It exercises the whole entrypoint (template, inputs, literal
conversion both ways, commit protocol) with no dependency of its own, which makes it the demo, the
test vehicle for storage backends, and the cold-start benchmark's task.

Invariants:
    * Takes no configuration (``Config = None``).
    * Produces exactly the declared outputs that have an input of the same name; a declared output
      without one is reported by the entrypoint as a missing output.
    * ``taskbox run --executor echo`` infers one output per input, of the input's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskbox.executors.base import Executor

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext


class EchoExecutor(Executor):
    """Returns its inputs as outputs of the same names."""

    task_type = "echo"
    summary = "returns each input as the output of the same name"

    @classmethod
    def infer_outputs(
        cls, config: Mapping[str, Any], inputs: Mapping[str, Any], declared: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Return one output per input, of the same type, and the declared ones (which win)."""
        return {**inputs, **declared}

    def execute(self, context: ExecutionContext, config: Any, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Copy every declared output from the input of the same name."""
        return {name: inputs[name] for name in context.output_types if name in inputs}
