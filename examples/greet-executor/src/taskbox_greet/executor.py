"""The ``greet`` executor: ``"<greeting>, <name>!"`` for the input ``name``.

Why: the smallest third-party executor with a config model, an input and an output; the image tests
build it into a custom image on top of taskbox's ``base`` image and run it there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from taskbox.errors import InputError
from taskbox.executors import Executor
from taskbox.executors.config import ExecutorConfig


class GreetConfig(ExecutorConfig):
    """The template's ``custom`` field.

    Attributes:
        greeting: The word before the name.

    """

    greeting: str = Field(default="Hello", min_length=1, max_length=64)


class GreetExecutor(Executor):
    """Greets the input ``name``."""

    task_type = "greet"
    Config = GreetConfig
    summary = "returns '<greeting>, <name>!'"

    def execute(self, context: Any, config: GreetConfig, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return ``{"message": "<greeting>, <name>!"}``.

        Raises:
            InputError: ``name`` is empty.

        """
        name = str(inputs.get("name", "")).strip()
        if not name:
            raise InputError("greet needs a non-empty input 'name'")
        return {"message": f"{config.greeting}, {name}!"}
