"""The ``taskbox`` command: ``execute`` (flag-compatible with ``pyflyte-execute``), ``fast-execute``, ``run``, ...

Why argparse: the entrypoint's start-up is paid at every task start; click or typer would add 0.1 s
before the task even loads. ``execute``'s flags are parsed by :mod:`taskbox.entrypoint.cmdline` (a fast
hand parser for the flag list Flyte serializes, argparse for anything else); this module dispatches.

Invariants:
    * The SIGTERM handler is installed before anything heavy is imported.
    * Nothing imports this module but the console entry point: it sits at the top of ``entrypoint/``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# The command line's parsing lives in cmdline; these names stay importable from here.
from taskbox.entrypoint.cmdline import execute_options, fast_parse, normalize
from taskbox.entrypoint.cmdline import execute_parser as _execute_parser
from taskbox.entrypoint.cmdline import split_resolver_args as _split_resolver_args

__all__ = ["COMMANDS", "_execute_parser", "_split_resolver_args", "execute_options", "fast_parse", "main", "normalize"]


def cmd_execute(argv: list[str]) -> int:
    """``taskbox execute``."""
    from taskbox.entrypoint.signals import TerminationGuard

    guard = TerminationGuard()
    guard.install()
    opts = execute_options(argv)
    if opts is None:
        return 2

    from taskbox import logs
    from taskbox.entrypoint.execute import execute

    logs.configure()
    return execute(opts, guard)


def cmd_a0(argv: list[str]) -> int:
    """``taskbox a0``: Flyte 2's container contract (prebuilt executors, and flyte-sdk tasks via the SDK)."""
    from taskbox.entrypoint.a0 import main as a0_main

    return a0_main(argv)


def cmd_fast_execute(argv: list[str]) -> int:
    """``taskbox fast-execute``: install a code bundle, then run ``execute`` in this process."""
    from taskbox.entrypoint.fast_execute import main as fast_execute_main

    return fast_execute_main(argv)


def cmd_bundle(argv: list[str]) -> int:
    """``taskbox bundle``: pack a source tree and upload it, content-addressed."""
    from taskbox.entrypoint.bundle import main as bundle_main

    return bundle_main(argv)


def cmd_run(argv: list[str]) -> int:
    """``taskbox run``: plain JSON/YAML inputs and outputs, exit codes for other orchestrators."""
    from taskbox.entrypoint.run import main as run_main

    return run_main(argv)


def cmd_executors(argv: list[str]) -> int:
    """``taskbox executors``: list executors, their task types, status and config schema."""
    import argparse

    p = argparse.ArgumentParser(
        prog="taskbox executors",
        description="List the executors installed here; 'available' means it can run here (its libraries import).",
    )
    p.add_argument(
        "--json", action="store_true", help="print JSON (summary, declared interface, requires, config JSON schema)"
    )
    ns = p.parse_args(argv)
    from taskbox.executors.registry import describe

    infos = describe()
    if ns.json:
        import json

        print(json.dumps([i._asdict() for i in infos], indent=2))
        return 0
    width = max((len(info.name) for info in infos), default=0) + 1
    pad = " " * width
    for info in infos:
        fields = ", ".join(sorted((info.config_schema or {}).get("properties", {}))) or "-"
        print(f"{info.name:<{width}} task types: {', '.join(info.task_types):<20} {info.source:<16} {info.status}")
        if info.summary:
            print(f"{pad} {info.summary}")
        for section in ("inputs", "outputs"):
            declared = getattr(info, section)
            if declared:
                print(f"{pad} {section}: {', '.join(f'{n}: {t}' for n, t in declared.items())}")
        print(f"{pad} config: {fields}")
    return 0


def cmd_inspect(argv: list[str]) -> int:
    """``taskbox inspect``: decode a protobuf file written or read by the entrypoint (:mod:`.inspection`)."""
    from taskbox.entrypoint.inspection import main as inspect_main

    return inspect_main(argv)


def cmd_template(argv: list[str]) -> int:
    """``taskbox template``: write a TaskTemplate (and inputs.pb) from a YAML/JSON spec (:mod:`.templatecmd`)."""
    from taskbox.entrypoint.templatecmd import main as template_main

    return template_main(argv)


def cmd_version(argv: list[str]) -> int:
    """``taskbox version``."""
    from taskbox import __version__

    print(__version__)
    return 0


def cmd_images(argv: list[str]) -> int:
    """``taskbox images``: the executor image catalog (see :mod:`taskbox.images.cli`)."""
    from taskbox.images.cli import images_main

    return images_main(argv)


def cmd_image(argv: list[str]) -> int:
    """``taskbox image build|push|sizes|tags``: build, push and measure executor images (:mod:`taskbox.images.cli`)."""
    from taskbox.images.cli import image_main

    return image_main(argv)


COMMANDS = {
    "execute": (cmd_execute, "run one task under Flyte's container contract (pyflyte-execute's flags)"),
    "a0": (cmd_a0, "run one task under Flyte 2's container contract (the flyte SDK's `a0` flags)"),
    "fast-execute": (cmd_fast_execute, "install a code bundle, then run `execute` in the same process"),
    "run": (cmd_run, "run one task with plain JSON/YAML inputs and outputs; the exit code tells the outcome"),
    "bundle": (cmd_bundle, "pack a source tree into a content-addressed code bundle and upload it"),
    "executors": (cmd_executors, "list the executors this installation can run, with their config schemas"),
    "inspect": (cmd_inspect, "print a .pb file (inputs, outputs, error document, task template) as JSON"),
    "template": (cmd_template, "write a task template (task.pb) and inputs.pb for an executor from a YAML/JSON spec"),
    "version": (cmd_version, "print taskbox's version"),
    "images": (cmd_images, "print the executor image catalog (each variant's reference, digest-pinned once pushed)"),
    "image": (cmd_image, "build a variant or custom executor image and check it; push variants; measure sizes"),
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


def console_main() -> None:
    """The ``taskbox`` console script: :func:`main`, then a quick exit when nothing else runs.

    A task's process ends right after its commit. Tearing the interpreter down (module dictionaries,
    the final collection) costs ~5-7 ms of a ~55 ms ``echo`` run, paid by every task start. So when the
    main thread is alone, exit handlers run (logging flushes its handlers there) and the standard streams
    are flushed as at a normal exit, then ``os._exit`` skips the teardown. With other non-daemon threads alive
    (user code may have started some) the exit is the normal one, which waits for them.

    A reader that goes away (``taskbox executors | head -1``) ends the process as ``SIGPIPE`` ends other
    command-line tools: quietly, exit code 141 (128 + SIGPIPE), no traceback.
    """
    try:
        code = main()
    except BrokenPipeError:
        code = _reader_gone()
    threading = sys.modules.get("threading")
    if threading is not None and any(not t.daemon and t is not threading.main_thread() for t in threading.enumerate()):
        sys.exit(code)  # a normal exit waits for non-daemon threads; daemon ones die either way
    import atexit  # lazy: only at exit

    atexit._run_exitfuncs()  # the handlers a normal exit runs (CPython's own entry for them)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what a normal exit would also lose
            pass
    os._exit(code)


def _reader_gone() -> int:
    """Point stdout at /dev/null (what is still buffered cannot reach anyone) and give SIGPIPE's exit code."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (replaced, closed): nothing to redirect
        pass
    finally:
        os.close(devnull)
    return 128 + 13  # SIGPIPE


if __name__ == "__main__":  # pragma: no cover
    console_main()
