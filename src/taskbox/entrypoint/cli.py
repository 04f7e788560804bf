"""The ``taskbox`` command line: ``execute`` (flag-compatible with ``pyflyte-execute``), ``fast-execute``, ``bundle``, ...

Why argparse: the entrypoint's start-up is paid at every task start; click or typer would add 0.1 s
before the task even loads. Even argparse costs ~6 ms (gettext, locale, and shutil for the terminal
width), so ``execute`` parses the well-formed flag list Flyte serializes with :func:`fast_parse` and
hands anything else (help, abbreviations, errors, positional resolver args) to argparse, which stays
the definition of the command line. A test checks that both agree wherever the fast path answers.

Invariants:
    * The SIGTERM handler is installed before anything heavy is imported.
    * Unsubstituted ``{{...}}`` placeholders, empty strings and the two-character string ``""`` mean
      "absent" (pyflyte-execute's ``normalize_inputs``).
    * Options come before ``--``; everything after the first ``--`` belongs to the resolver.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from taskbox.entrypoint.execute import ExecuteOptions

_PLACEHOLDER = re.compile(r"^\{\{.*\}\}$")
_TRUTHY = {"1", "true", "yes", "on"}


def normalize(value: str | None) -> str | None:
    """Map Flyte's "absent" spellings to ``None``."""
    if value is None:
        return None
    stripped = value.strip()
    if not stripped or stripped == '""' or _PLACEHOLDER.match(stripped):
        return None
    return value


def _split_resolver_args(argv: list[str]) -> tuple[list[str], list[str] | None]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, None


def _execute_parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415 - see the module docstring

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


def execute_options(argv: list[str]) -> ExecuteOptions | None:
    """Parse ``execute``'s arguments into :class:`~taskbox.entrypoint.execute.ExecuteOptions`.

    Returns:
        The options, or ``None`` (after saying why on stderr) when ``--inputs`` or ``--output-prefix``
        hold no real value. argparse exits with code 2 on malformed arguments.
    """
    options, resolver_args = _split_resolver_args(argv)
    ns = fast_parse(options) if resolver_args is not None else None
    if ns is None:
        ns = _execute_parser().parse_args(options)
    if resolver_args is None:
        resolver_args = ns.resolver_args
    inputs, output_prefix = normalize(ns.inputs), normalize(ns.output_prefix)
    if inputs is None or output_prefix is None:
        print("taskbox execute: --inputs and --output-prefix need real values", file=sys.stderr)
        return None

    from taskbox.entrypoint.execute import ExecuteOptions  # noqa: PLC0415

    return ExecuteOptions(
        inputs=inputs,
        output_prefix=output_prefix,
        resolver=ns.resolver,
        resolver_args=[a for a in resolver_args],
        raw_output_prefix=normalize(ns.raw_output_prefix),
        checkpoint_path=normalize(ns.checkpoint_path),
        prev_checkpoint=normalize(ns.prev_checkpoint),
        fail_on_error=ns.fail_on_error or os.environ.get("FLYTE_FAIL_ON_ERROR", "").lower() in _TRUTHY,
    )


def cmd_execute(argv: list[str]) -> int:
    """``taskbox execute``."""
    from taskbox.entrypoint.signals import TerminationGuard  # noqa: PLC0415

    guard = TerminationGuard()
    guard.install()
    opts = execute_options(argv)
    if opts is None:
        return 2

    from taskbox import logs  # noqa: PLC0415
    from taskbox.entrypoint.execute import execute  # noqa: PLC0415

    logs.configure()
    return execute(opts, guard)


def cmd_fast_execute(argv: list[str]) -> int:
    """``taskbox fast-execute``: install a code bundle, then run ``execute`` in this process."""
    from taskbox.entrypoint.fast_execute import main as fast_execute_main  # noqa: PLC0415

    return fast_execute_main(argv)


def cmd_bundle(argv: list[str]) -> int:
    """``taskbox bundle``: pack a source tree and upload it, content-addressed."""
    from taskbox.entrypoint.bundle import main as bundle_main  # noqa: PLC0415

    return bundle_main(argv)


def cmd_run(argv: list[str]) -> int:
    """``taskbox run``: plain JSON/YAML inputs and outputs, exit codes for other orchestrators."""
    from taskbox.entrypoint.run import main as run_main  # noqa: PLC0415

    return run_main(argv)


def cmd_executors(argv: list[str]) -> int:
    """``taskbox executors``: list executors, their task types, status and config schema."""
    import argparse  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="taskbox executors", description="List the executors this image can run.")
    p.add_argument("--json", action="store_true", help="print JSON (with each config's JSON schema)")
    ns = p.parse_args(argv)
    from taskbox.executors.registry import describe  # noqa: PLC0415

    infos = describe()
    if ns.json:
        import json  # noqa: PLC0415

        print(json.dumps([i._asdict() for i in infos], indent=2))
        return 0
    for info in infos:
        fields = ", ".join(sorted((info.config_schema or {}).get("properties", {}))) or "-"
        print(f"{info.name:<10} task types: {', '.join(info.task_types):<20} {info.source:<16} {info.status}")
        print(f"{'':<10} config: {fields}")
    return 0


_INSPECT_TYPES = {
    "literals": ("flyteidl.core.literals_pb2", "LiteralMap"),
    "literal": ("flyteidl.core.literals_pb2", "Literal"),
    "error": ("flyteidl.core.errors_pb2", "ErrorDocument"),
    "template": ("flyteidl.core.tasks_pb2", "TaskTemplate"),
}


def _guess_inspect_type(uri: str) -> str:
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    if name.startswith("error"):
        return "error"
    if name.endswith("_offloaded_metadata.pb"):
        return "literal"
    if name in ("task.pb", "task_template.pb") or "template" in name:
        return "template"
    return "literals"


def cmd_inspect(argv: list[str]) -> int:
    """``taskbox inspect``: decode a protobuf file written or read by the entrypoint."""
    import argparse  # noqa: PLC0415

    p = argparse.ArgumentParser(prog="taskbox inspect", description="Print a Flyte .pb file as JSON.")
    p.add_argument("uri", help="path or URI of the file")
    p.add_argument("--type", choices=sorted(_INSPECT_TYPES), help="message type (guessed from the file name)")
    ns = p.parse_args(argv)
    import importlib  # noqa: PLC0415

    from google.protobuf.json_format import MessageToJson  # noqa: PLC0415

    from taskbox import storage  # noqa: PLC0415

    module_name, cls_name = _INSPECT_TYPES[ns.type or _guess_inspect_type(ns.uri)]
    message = getattr(importlib.import_module(module_name), cls_name)()
    message.ParseFromString(storage.read_bytes(ns.uri))
    print(MessageToJson(message, indent=2))
    return 0


def cmd_version(argv: list[str]) -> int:
    """``taskbox version``."""
    from taskbox import __version__  # noqa: PLC0415

    print(__version__)
    return 0


def cmd_images(argv: list[str]) -> int:
    """``taskbox images``: the executor image catalog (see :mod:`taskbox.images.cli`)."""
    from taskbox.images.cli import images_main  # noqa: PLC0415

    return images_main(argv)


def cmd_image(argv: list[str]) -> int:
    """``taskbox image build|sizes``: build and measure executor images (see :mod:`taskbox.images.cli`)."""
    from taskbox.images.cli import image_main  # noqa: PLC0415

    return image_main(argv)


COMMANDS = {
    "execute": (cmd_execute, "run one task under Flyte's container contract (pyflyte-execute's flags)"),
    "fast-execute": (cmd_fast_execute, "install a code bundle, then run `execute` in the same process"),
    "run": (cmd_run, "run one task with plain JSON/YAML inputs and outputs; the exit code tells the outcome"),
    "bundle": (cmd_bundle, "pack a source tree into a content-addressed code bundle and upload it"),
    "executors": (cmd_executors, "list the executors this installation can run, with their config schemas"),
    "inspect": (cmd_inspect, "print a .pb file (inputs, outputs, error document, task template) as JSON"),
    "version": (cmd_version, "print taskbox's version"),
    "images": (cmd_images, "print the executor image catalog (repository, tag, digest of each variant)"),
    "image": (cmd_image, "build a variant or custom executor image and check it; measure image sizes"),
}

#: An image's ENTRYPOINT is ``taskbox`` and Kubernetes appends a template's args to it, so args that start
#: with flytekit's command names (``pyflyte-execute ...``) or with ``taskbox`` itself name the same commands.
ALIASES = {"taskbox": None, "pyflyte-execute": "execute", "pyflyte-fast-execute": "fast-execute"}


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ALIASES:
        alias = ALIASES[args[0]]
        args = args[1:] if alias is None else [alias, *args[1:]]
    if not args or args[0] in ("-h", "--help"):
        print("usage: taskbox {" + ",".join(COMMANDS) + "} ...\n")
        for name, (_, summary) in COMMANDS.items():
            print(f"  {name:<12} {summary}")
        return 0 if args else 2
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"taskbox: unknown command {args[0]!r}; try one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return command[0](args[1:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
