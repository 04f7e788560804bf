"""The container command line, both ways: the args a template carries, and their parsing at start-up.

Why one module: the args a template's container carries are built by the authoring classes
(:class:`~taskbox.authoring.base.TemplateTask`, ``@taskbox.task``, :class:`~taskbox.authoring.http_job.HTTPJobTask`)
and parsed by ``taskbox execute``, ``taskbox fast-execute`` and ``taskbox run`` (which reads a template's
own args to choose its resolver). Keeping both directions here means a new flag or placeholder is added
once, and a round-trip test (``tests/entrypoint/test_cmdline.py``) proves every kind of task parses back
to what was built.

Shape (Flyte substitutes the ``{{...}}`` placeholders)::

    [taskbox fast-execute --additional-distribution URI --dest-dir DIR --]
    taskbox execute --inputs {{.input}} --output-prefix {{.outputPrefix}}
        --raw-output-data-prefix {{.rawOutputDataPrefix}}
        [--checkpoint-path {{.checkpointOutputPrefix}} --prev-checkpoint {{.prevCheckpointPrefix}}]
        --resolver RESOLVER -- RESOLVER_ARGS...

Why a hand parser: the entrypoint's start-up is paid at every task start; argparse costs ~6 ms (gettext,
locale, and shutil for the terminal width), so ``execute`` parses the well-formed flag list Flyte
serializes with :func:`fast_parse` and hands anything else (help, abbreviations, errors, positional
resolver args) to argparse (:func:`execute_parser`), which stays the definition of the command line. A
test checks that both agree wherever the fast path answers.

Invariants:
    * Unsubstituted ``{{...}}`` placeholders, empty strings and the two-character string ``""`` mean
      "absent" (pyflyte-execute's ``normalize_inputs``).
    * Options come before ``--``; everything after the first ``--`` belongs to the resolver.
    * Built args hold only Flyte's placeholders, resolver names and code locations: never values.
    * This module imports nothing of taskbox at import time (it sits on every task's start-up path).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from taskbox import settings

if TYPE_CHECKING:
    import argparse

__all__ = [
    "CHECKPOINT_ARGS",
    "TEMPLATE_PATH",
    "ContainerCommand",
    "ExecuteOptions",
    "FastExecuteArgs",
    "HelpRequested",
    "UsageError",
    "execute_args",
    "execute_options",
    "execute_parser",
    "fast_execute_args",
    "fast_parse",
    "function_task_args",
    "normalize",
    "parse_container_args",
    "parse_fast_execute",
    "split_resolver_args",
    "template_task_args",
]

_PLACEHOLDER = re.compile(r"^\{\{.*\}\}$")
_TEMPLATE_PATH = re.compile(r"^\{\{\s*\.taskTemplatePath\s*\}\}$", re.IGNORECASE)
_TRUTHY = settings.TRUTHY  # a malformed FLYTE_FAIL_ON_ERROR fails the run (settings.validate)

#: Flyte's placeholders (substituted by propeller).
INPUT = "{{.input}}"
OUTPUT_PREFIX = "{{.outputPrefix}}"
RAW_OUTPUT_PREFIX = "{{.rawOutputDataPrefix}}"
CHECKPOINT = "{{.checkpointOutputPrefix}}"
PREV_CHECKPOINT = "{{.prevCheckpointPrefix}}"
TEMPLATE_PATH = "{{.taskTemplatePath}}"
#: The checkpoint flags (async executors and function tasks carry them; placed before ``--resolver``).
CHECKPOINT_ARGS = ("--checkpoint-path", CHECKPOINT, "--prev-checkpoint", PREV_CHECKPOINT)
#: The resolvers of taskbox's own templates.
TEMPLATE_RESOLVER = "taskbox.template"
FUNCTION_RESOLVER = "taskbox.function"


def normalize(value: str | None) -> str | None:
    """Map Flyte's "absent" spellings to ``None``."""
    if value is None:
        return None
    stripped = value.strip()
    if not stripped or stripped == '""' or _PLACEHOLDER.match(stripped):
        return None
    return value


def split_resolver_args(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """Split at the first ``--``: ``(options, resolver args)``; ``None`` when there is no ``--``."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


# ------------------------------------------------------------------ building


def execute_args(resolver: str, resolver_args: Sequence[str], *, checkpoints: bool = False) -> list[str]:
    """Return ``taskbox execute ...`` with Flyte's placeholders, ``--resolver RESOLVER -- RESOLVER_ARGS``.

    Args:
        resolver: The resolver's name.
        resolver_args: Its arguments (after ``--``).
        checkpoints: Add :data:`CHECKPOINT_ARGS` (tasks that resume from a checkpoint).

    """
    args = ["taskbox", "execute", "--inputs", INPUT, "--output-prefix", OUTPUT_PREFIX,
            "--raw-output-data-prefix", RAW_OUTPUT_PREFIX]  # fmt: skip
    if checkpoints:
        args += CHECKPOINT_ARGS
    return [*args, "--resolver", resolver, "--", *resolver_args]


def fast_execute_args(bundle: str, dest_dir: str, inner: Sequence[str]) -> list[str]:
    """Wrap ``inner`` (a ``taskbox execute`` command) in ``taskbox fast-execute`` with a code bundle.

    Raises:
        ConfigError: ``bundle`` or ``dest_dir`` is not a non-empty string.
    """
    from taskbox.errors import ConfigError

    if not isinstance(bundle, str) or not bundle:
        raise ConfigError(f"bundle must be a non-empty URI, got {bundle!r}")
    if not isinstance(dest_dir, str) or not dest_dir:
        raise ConfigError(f"dest_dir must be a non-empty path, got {dest_dir!r}")
    return ["taskbox", "fast-execute", "--additional-distribution", bundle, "--dest-dir", dest_dir, "--", *inner]


def template_task_args(executor: str | None, *, checkpoints: bool = False) -> list[str]:
    """The args of a prebuilt-executor template: ``... --resolver taskbox.template -- {{.taskTemplatePath}} EXECUTOR``.

    Args:
        executor: The executor's registry name; ``None`` leaves it out (the template's type picks it).
        checkpoints: Add :data:`CHECKPOINT_ARGS` (async executors record their job's handle there).

    """
    return execute_args(TEMPLATE_RESOLVER, [TEMPLATE_PATH, *([executor] if executor else [])], checkpoints=checkpoints)


def function_task_args(module: str, function_name: str, *, bundle: str | None = None, dest_dir: str = ".") -> list[str]:
    """The args of a ``@taskbox.task``: ``[fast-execute ... --] taskbox execute ... -- task-module M task-name N``.

    Raises:
        ConfigError: ``bundle``/``dest_dir`` given but empty or not strings.
    """
    args = execute_args(FUNCTION_RESOLVER, ["task-module", module, "task-name", function_name], checkpoints=True)
    return args if bundle is None else fast_execute_args(bundle, dest_dir, args)


# ------------------------------------------------------------------ parsing: execute


class ExecuteOptions:
    """The flags of ``taskbox execute`` (``pyflyte-execute``'s, after placeholder normalisation)."""

    __slots__ = (
        "checkpoint_path",
        "fail_on_error",
        "inputs",
        "output_prefix",
        "prev_checkpoint",
        "raw_output_prefix",
        "resolver",
        "resolver_args",
    )

    def __init__(
        self,
        inputs: str,
        output_prefix: str,
        resolver: str,
        resolver_args: Sequence[str] = (),
        raw_output_prefix: str | None = None,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
        fail_on_error: bool = False,
    ) -> None:
        self.inputs = inputs
        self.output_prefix = output_prefix
        self.resolver = resolver
        self.resolver_args = list(resolver_args)
        self.raw_output_prefix = raw_output_prefix
        self.checkpoint_path = checkpoint_path
        self.prev_checkpoint = prev_checkpoint
        self.fail_on_error = fail_on_error


def execute_parser() -> argparse.ArgumentParser:
    """Build ``taskbox execute``'s argparse parser (the definition of its command line)."""
    import argparse  # lazy: see the module docstring

    p = argparse.ArgumentParser(
        prog="taskbox execute",
        description="Run one task under Flyte's container contract (pyflyte-execute's flags).",
    )
    p.add_argument("--inputs", required=True, help="URI of inputs.pb (a LiteralMap)")
    p.add_argument("--output-prefix", required=True, help="where outputs.pb or error.pb is committed")
    p.add_argument("--raw-output-data-prefix", dest="raw_output_prefix", help="where data blobs go")
    p.add_argument("--checkpoint-path", help="where this attempt writes its checkpoint")
    p.add_argument("--prev-checkpoint", help="the previous attempt's checkpoint")
    p.add_argument("--resolver", required=True, help="taskbox.template, taskbox.function, or flytekit's alias")
    p.add_argument("--fail-on-error", action="store_true", help="exit 1 after writing error.pb")
    p.add_argument("--dynamic-addl-distro", help=argparse.SUPPRESS)  # pyflyte-fast-execute adds these
    p.add_argument("--dynamic-dest-dir", help=argparse.SUPPRESS)
    p.add_argument("resolver_args", nargs=argparse.REMAINDER, help="arguments for the resolver, after --")
    return p


_VALUE_FLAGS = {
    "--inputs": "inputs",
    "--output-prefix": "output_prefix",
    "--raw-output-data-prefix": "raw_output_prefix",
    "--checkpoint-path": "checkpoint_path",
    "--prev-checkpoint": "prev_checkpoint",
    "--resolver": "resolver",
    "--dynamic-addl-distro": "dynamic_addl_distro",
    "--dynamic-dest-dir": "dynamic_dest_dir",
}
_BOOL_FLAGS = {"--fail-on-error": "fail_on_error"}
_REQUIRED = ("inputs", "output_prefix", "resolver")


def fast_parse(options: list[str]) -> SimpleNamespace | None:
    """Parse ``execute``'s options (the part before ``--``) without building an argparse parser.

    Returns:
        The attributes argparse would return, or ``None`` when the input is anything but a well-formed
        list of exact long flags (then argparse must decide, and report errors).
    """
    values: dict[str, object] = dict.fromkeys(_VALUE_FLAGS.values())
    values["fail_on_error"] = False
    i = 0
    while i < len(options):
        name, eq, inline = options[i].partition("=")
        if name in _VALUE_FLAGS:
            if eq:
                values[_VALUE_FLAGS[name]] = inline
                i += 1
                continue
            if i + 1 >= len(options) or options[i + 1].startswith("-"):
                return None
            values[_VALUE_FLAGS[name]] = options[i + 1]
            i += 2
        elif name in _BOOL_FLAGS and not eq:
            values[_BOOL_FLAGS[name]] = True
            i += 1
        else:
            return None
    if any(values[r] is None for r in _REQUIRED):
        return None
    values["resolver_args"] = []
    return SimpleNamespace(**values)


def execute_options(argv: list[str], environ: Mapping[str, str] | None = None) -> ExecuteOptions | None:
    """Parse ``execute``'s arguments into :class:`ExecuteOptions`.

    Args:
        argv: Everything after ``execute``.
        environ: Where ``FLYTE_FAIL_ON_ERROR`` is read (``os.environ`` by default).

    Returns:
        The options, or ``None`` (after saying why on stderr) when ``--inputs`` or ``--output-prefix``
        hold no real value. argparse exits with code 2 on malformed arguments.
    """
    options, resolver_args = split_resolver_args(argv)
    ns: Any = fast_parse(options) if resolver_args is not None else None
    if ns is None:
        ns = execute_parser().parse_args(options)
    if resolver_args is None:
        resolver_args = ns.resolver_args
    inputs, output_prefix = normalize(ns.inputs), normalize(ns.output_prefix)
    if inputs is None or output_prefix is None:
        print("taskbox execute: --inputs and --output-prefix need real values", file=sys.stderr)
        return None
    env = os.environ if environ is None else environ
    return ExecuteOptions(
        inputs=inputs,
        output_prefix=output_prefix,
        resolver=ns.resolver,
        resolver_args=list(resolver_args),
        raw_output_prefix=normalize(ns.raw_output_prefix),
        checkpoint_path=normalize(ns.checkpoint_path),
        prev_checkpoint=normalize(ns.prev_checkpoint),
        fail_on_error=ns.fail_on_error or env.get("FLYTE_FAIL_ON_ERROR", "").lower() in _TRUTHY,
    )


# ------------------------------------------------------------------ parsing: fast-execute

FAST_EXECUTE_USAGE = (
    "usage: taskbox fast-execute [--additional-distribution URI] [--dest-dir DIR] -- "
    "(taskbox execute | pyflyte-execute) ARGS..."
)

_FAST_VALUE_FLAGS = {
    "--additional-distribution": "distribution",
    "--dynamic-addl-distro": "distribution",
    "--dest-dir": "dest_dir",
    "--dynamic-dest-dir": "dest_dir",
}


class UsageError(ValueError):
    """The command line of ``fast-execute`` is malformed (exit code 2, like argparse)."""


class HelpRequested(UsageError):
    """``-h``/``--help`` where a command was expected (a template's args that ask for help)."""


class FastExecuteArgs:
    """Parsed ``fast-execute`` arguments.

    Attributes:
        distribution: The bundle URI, or ``None`` when absent.
        dest_dir: The destination directory, or ``None`` (the working directory).
        execute_argv: The inner command's arguments, as ``taskbox execute`` takes them.
    """

    __slots__ = ("dest_dir", "distribution", "execute_argv")

    def __init__(self, distribution: str | None, dest_dir: str | None, execute_argv: list[str]) -> None:
        self.distribution = distribution
        self.dest_dir = dest_dir
        self.execute_argv = execute_argv


def parse_fast_execute(argv: list[str]) -> FastExecuteArgs | None:
    """Parse ``fast-execute``'s options and find the inner ``execute`` command.

    Args:
        argv: Everything after ``fast-execute``.

    Returns:
        The parsed arguments, or ``None`` when help was asked for.

    Raises:
        UsageError: Unknown option, missing value, or an inner command other than ``taskbox execute`` /
            ``pyflyte-execute``.
    """
    values: dict[str, str | None] = {"distribution": None, "dest_dir": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return None
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-"):
            break  # click may have eaten the "--" (flytekit's UNPROCESSED arguments)
        name, eq, inline = arg.partition("=")
        if name not in _FAST_VALUE_FLAGS:
            raise UsageError(f"unknown option {arg!r}")
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        else:
            raise UsageError(f"{name} needs a value")
        values[_FAST_VALUE_FLAGS[name]] = normalize(value)
    return FastExecuteArgs(values["distribution"], values["dest_dir"], _execute_argv(argv[i:]))


def _execute_argv(command: list[str]) -> list[str]:
    """Strip the inner command's program name: ``taskbox execute`` or ``pyflyte-execute``."""
    if not command:
        raise UsageError("no command after the options (expected `taskbox execute ...` or `pyflyte-execute ...`)")
    program = os.path.basename(command[0])
    if program == "taskbox" and len(command) > 1 and command[1] == "execute":
        return command[2:]
    if program == "pyflyte-execute":
        return command[1:]
    raise UsageError(
        f"cannot run {' '.join(command[:2])!r} in-process: fast-execute continues as `taskbox execute` "
        "(or flytekit's `pyflyte-execute` arguments)"
    )


# ------------------------------------------------------------------ parsing: a template's own args


class ContainerCommand:
    """What a template's container args run, as ``taskbox run`` reads them.

    Attributes:
        resolver: The resolver's name.
        resolver_args: Its arguments; ``None`` entries stand for the template's path; absent values dropped.
        distribution: The code bundle of a ``fast-execute`` command, or ``None``.
        dest_dir: ``fast-execute``'s ``--dest-dir``, or ``None`` (the working directory).
        executor: The executor named after the template's path (``""`` for function tasks or none named).
    """

    __slots__ = ("dest_dir", "distribution", "executor", "resolver", "resolver_args")

    def __init__(
        self,
        resolver: str,
        resolver_args: list[str | None],
        distribution: str | None = None,
        dest_dir: str | None = None,
        executor: str = "",
    ) -> None:
        self.resolver = resolver
        self.resolver_args = resolver_args
        self.distribution = distribution
        self.dest_dir = dest_dir
        self.executor = executor


def parse_container_args(args: Sequence[str]) -> ContainerCommand | None:
    """Read the resolver (and a code bundle) from a template's container args, as Flyte would run them.

    Returns:
        The command, or ``None`` when the args name no resolver (not a taskbox/pyflyte command).

    Raises:
        HelpRequested: The ``fast-execute`` args ask for help.
        UsageError: The ``fast-execute`` args are malformed.
    """
    args = list(args)
    if args and os.path.basename(args[0]) == "taskbox":
        args = args[1:]
    if not args or "--resolver" not in args:
        return None
    distribution = dest_dir = None
    if args[0] in ("fast-execute", "pyflyte-fast-execute"):
        parsed = parse_fast_execute(args[1:])
        if parsed is None:
            raise HelpRequested("the fast-execute args ask for help")
        distribution, dest_dir = parsed.distribution, parsed.dest_dir
        args = parsed.execute_argv
    elif args[0] in ("execute", "pyflyte-execute"):
        args = args[1:]
    options, rest = split_resolver_args(args)
    if "--resolver" not in options or options.index("--resolver") + 1 >= len(options):
        return None
    resolver = options[options.index("--resolver") + 1]
    filled: list[str | None] = [None if _TEMPLATE_PATH.match(a) else a for a in rest or []]
    filled = [a for a in filled if a is None or normalize(a) is not None]
    executor = next((a for a in filled[1:] if a), "") if resolver != FUNCTION_RESOLVER else ""
    return ContainerCommand(resolver, filled, distribution, dest_dir, executor)
