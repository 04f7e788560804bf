"""Test executors: each is a real plugin, found through the ``taskbox.executors`` entry point group."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from taskbox.errors import InputError
from taskbox.executors import Executor
from taskbox.executors.config import ExecutorConfig


class SleepConfig(ExecutorConfig):
    seconds: float = Field(default=30.0, ge=0)
    marker: str | None = None


class SleepExecutor(Executor):
    """Sleeps in small steps (so SIGTERM is seen), writing a marker file once running."""

    task_type = "test-sleep"
    Config = SleepConfig

    def execute(self, context, config: SleepConfig, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        if config.marker:
            with open(config.marker, "w") as fh:
                fh.write(str(os.getpid()))
        deadline = time.monotonic() + config.seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
        return {"slept": config.seconds}


class WhoAmIExecutor(Executor):
    """Reports what the context says about the run."""

    task_type = "test-whoami"

    def execute(self, context, config, inputs):
        secret = context.secrets.get("demo", "token") if inputs.get("with_secret") else ""
        return {
            "execution": context.execution.name,
            "project": context.execution.project,
            "task": context.task.name,
            "attempt": context.attempt,
            "secret_length": len(secret),
        }


class FailingExecutor(Executor):
    """Raises what its input asks for, to exercise the error document."""

    task_type = "test-fail"

    def execute(self, context, config, inputs):
        kind = inputs["kind"]
        if kind == "user":
            raise InputError("the input was wrong")
        if kind == "secret":
            token = context.secrets.get("demo", "token")
            raise RuntimeError(f"server said: bad token {token}")
        if kind == "logged-secret":  # a log record and the error both carry the secret (redacted on the way out)
            token = context.secrets.get("demo", "token")
            logging.getLogger("taskbox_testplugins").warning("calling the server with token %s", token)
            raise RuntimeError(f"server said: bad token {token}")
        if kind == "huge":
            raise RuntimeError("x" * 5_000_000)
        raise ValueError("an untranslated bug")


class NotAnExecutor:
    task_type = "test-broken"


class TemplateConfig(ExecutorConfig):
    text: str


class ShoutExecutor(Executor):
    """A plugin with its own conventions: ``$name`` placeholders and a ``shout`` output (taskbox run infers both)."""

    task_type = "test-shout"
    Config = TemplateConfig

    @classmethod
    def config_inputs(cls, config):
        import re

        return list(dict.fromkeys(re.findall(r"\$(\w+)", config.get("text", ""))))

    @classmethod
    def infer_outputs(cls, config, inputs, declared):
        from taskbox.typespec import parse_type

        return {"shout": parse_type("str"), **declared}

    def execute(self, context, config: TemplateConfig, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        import string

        return {"shout": string.Template(config.text).substitute(inputs).upper()}


class ClumsyConventions(Executor):
    """A plugin whose ``infer_outputs`` answers something that is not an interface (a plugin bug)."""

    task_type = "test-clumsy"

    @classmethod
    def infer_outputs(cls, config, inputs, declared):
        return {"out": "str"}

    def execute(self, context, config, inputs):
        return {}


class WordCountConfig(ExecutorConfig):
    min_length: int = Field(default=1, ge=1)


class WordCountExecutor(Executor):
    """A plugin that declares its interface: a ``str`` input, an ``int`` output (no ``interface`` in the config)."""

    task_type = "test-wordcount"
    Config = WordCountConfig
    summary = "counts the words of a text"
    inputs = {"text": "str"}
    outputs = {"count": "int"}

    def execute(self, context, config: WordCountConfig, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"count": sum(1 for word in inputs["text"].split() if len(word) >= config.min_length)}


class NeedsALibrary(Executor):
    """Declares a module this environment does not have: listed as unavailable, and running it is a USER error."""

    task_type = "test-needs-library"
    requires = ("taskbox_no_such_library", "json")

    def execute(self, context, config, inputs):
        import taskbox_no_such_library  # noqa: F401  # never reached: the registry refuses to run it first

        return {}


class ImportsLazily(Executor):
    """Imports a missing module inside ``execute`` without declaring it (``requires``): still not retried forever."""

    task_type = "test-lazy-import"

    def execute(self, context, config, inputs):
        import taskbox_no_such_library  # noqa: F401

        return {}
