"""Flyte 2's container command line (``a0``), both ways: the args a template carries, and their parsing.

Why a module beside :mod:`taskbox.entrypoint.cmdline`: Flyte 2 is a second dialect with its own flags,
environment fallbacks and placeholders, measured from the installed ``flyte`` SDK (``flyte/_bin/runtime.py``,
``flyte/_task.py``). Both dialects share :func:`taskbox.entrypoint.cmdline.normalize`.

Shape (the v2 backend substitutes the ``{{...}}`` placeholders)::

    a0 --inputs {{.input}} --outputs-path {{.outputPrefix}} --version V
       --raw-data-path {{.rawOutputDataPrefix}} --checkpoint-path {{.checkpointOutputPrefix}}
       --prev-checkpoint {{.prevCheckpointPrefix}} --run-name {{.runName}} --name {{.actionName}}
       --run-start-time {{.runStartTime}} [--image-cache X] [--tgz URI | --pkl URI] [--dest DIR]
       [--resolver CLASS ARGS...]

Example (a prebuilt executor's task: the template travels in the resolver args, because a v2 container
gets ``{{.taskTemplatePath}}`` as ``inline://taskTemplate`` and cannot read it)::

    args = a0_args(PREBUILT_RESOLVER, ["template", encode_template(template.SerializeToString())])
    opts = parse_a0(args[1:])   # opts.resolver == PREBUILT_RESOLVER

Invariants:
    * Short forms ``-i -o -v -r -c -p``; ``--flag=value`` works; resolver args follow the class with no
      ``--`` (a ``--`` is accepted and dropped); everything after ``--resolver CLASS`` is the resolver's.
    * ``--name``/``--run-name``/``--run-base-dir``/``--project``/``--domain``/``--org`` fall back to
      ``ACTION_NAME``/``RUN_NAME``/``_U_RUN_BASE``/``FLYTE_INTERNAL_EXECUTION_PROJECT``/``..._DOMAIN``/
      ``_U_ORG_NAME``; an unsubstituted ``{{...}}`` counts as absent (then the fallback applies).
    * Built args hold only placeholders, resolver names and the encoded template: never input values.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from taskbox.entrypoint.cmdline import (
    CHECKPOINT,
    INPUT,
    OUTPUT_PREFIX,
    PREV_CHECKPOINT,
    RAW_OUTPUT_PREFIX,
    UsageError,
    normalize,
)

__all__ = [
    "USAGE",
    "A0Options",
    "PREBUILT_RESOLVER",
    "a0_args",
    "decode_template",
    "encode_template",
    "parse_a0",
]

#: The resolver of a prebuilt executor's task under ``a0`` (args: ``template <encoded TaskTemplate>``).
PREBUILT_RESOLVER = "taskbox.flyte2.PrebuiltTaskResolver"
#: Flyte 2's placeholders beyond v1's.
RUN_NAME = "{{.runName}}"
ACTION_NAME = "{{.actionName}}"
RUN_START_TIME = "{{.runStartTime}}"
#: ``taskbox a0 --help``.
USAGE = """usage: taskbox a0 --inputs URI --outputs-path PREFIX [--version V] [--raw-data-path PREFIX]
                  [--checkpoint-path PREFIX] [--prev-checkpoint PREFIX] [--run-name NAME] [--name NAME]
                  [--run-start-time TIME] [--run-base-dir URI] [--project P] [--domain D] [--org O]
                  [--image-cache X] [--tgz URI | --pkl URI] [--dest DIR] --resolver CLASS [ARGS...]

Flyte 2's container contract (the flyte SDK's `a0`). Prebuilt executors:
  --resolver taskbox.flyte2.PrebuiltTaskResolver template <encoded TaskTemplate> [executor NAME]
Any other resolver (or --pkl) is a flyte-sdk task, run by the installed flyte SDK (taskbox[flyte2]).
Short forms: -i -o -v -r -c -p. See docs/flyte2.md."""
#: The prefix of an encoded template: a version, so the encoding can change without guessing.
_TEMPLATE_PREFIX = "tbx1:"

#: option -> (destination, environment fallback); ``--debug``/``--interactive-mode`` take a value (click.BOOL).
_OPTIONS: dict[str, tuple[str, str | None]] = {
    "--inputs": ("inputs", None),
    "--outputs-path": ("outputs_path", None),
    "--version": ("version", None),
    "--run-base-dir": ("run_base_dir", "_U_RUN_BASE"),
    "--raw-data-path": ("raw_data_path", None),
    "--checkpoint-path": ("checkpoint_path", None),
    "--prev-checkpoint": ("prev_checkpoint", None),
    "--name": ("name", "ACTION_NAME"),
    "--run-name": ("run_name", "RUN_NAME"),
    "--run-start-time": ("run_start_time", None),
    "--project": ("project", "FLYTE_INTERNAL_EXECUTION_PROJECT"),
    "--domain": ("domain", "FLYTE_INTERNAL_EXECUTION_DOMAIN"),
    "--org": ("org", "_U_ORG_NAME"),
    "--debug": ("debug", "_F_E_VS"),
    "--interactive-mode": ("interactive_mode", None),
    "--image-cache": ("image_cache", None),
    "--tgz": ("tgz", None),
    "--pkl": ("pkl", None),
    "--dest": ("dest", None),
}
_SHORT = {
    "-i": "--inputs",
    "-o": "--outputs-path",
    "-v": "--version",
    "-r": "--raw-data-path",
    "-c": "--checkpoint-path",
    "-p": "--prev-checkpoint",
}


class A0Options:
    """The flags of ``a0`` after placeholder normalisation and environment fallbacks.

    Attributes are the long options' names with ``_`` (``outputs_path``...), ``None`` when absent;
    ``resolver`` and ``resolver_args`` as given; ``argv`` the arguments as received (for a hand-off to
    flyte's own runtime).
    """

    inputs: str
    outputs_path: str
    version: str | None
    run_base_dir: str | None
    raw_data_path: str | None
    checkpoint_path: str | None
    prev_checkpoint: str | None
    name: str | None
    run_name: str | None
    run_start_time: str | None
    project: str | None
    domain: str | None
    org: str | None
    debug: str | None
    interactive_mode: str | None
    image_cache: str | None
    tgz: str | None
    pkl: str | None
    dest: str | None
    resolver: str | None
    resolver_args: list[str]
    argv: list[str]

    def __init__(self, values: Mapping[str, str | None], resolver: str | None, resolver_args: Sequence[str]) -> None:
        for dest, _env in _OPTIONS.values():
            setattr(self, dest, values.get(dest))
        self.resolver = resolver
        self.resolver_args = list(resolver_args)
        self.argv = []

    def __repr__(self) -> str:
        fields = {dest: getattr(self, dest) for dest, _env in _OPTIONS.values()}
        return f"A0Options({fields!r}, resolver={self.resolver!r}, resolver_args={self.resolver_args!r})"


def parse_a0(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> A0Options:
    """Parse ``a0``'s arguments (after the ``a0`` word).

    Args:
        argv: The arguments.
        environ: Where the fallbacks are read (``os.environ`` by default).

    Returns:
        The options.

    Raises:
        UsageError: An unknown option, an option without its value, a stray positional argument, or a
            missing ``--inputs``/``--outputs-path``.
    """
    import os

    env = os.environ if environ is None else environ
    values: dict[str, str | None] = {}
    resolver: str | None = None
    resolver_args: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--resolver" or arg.startswith("--resolver="):
            if "=" in arg:
                resolver, rest = arg.split("=", 1)[1], args[i + 1 :]
            elif i + 1 < len(args):
                resolver, rest = args[i + 1], args[i + 2 :]
            else:
                raise UsageError("a0: option --resolver needs a value")
            resolver_args = rest[1:] if rest[:1] == ["--"] else rest
            break
        name, value, step = _option(args, i)
        values[_OPTIONS[name][0]] = value
        i += step
    for dest, env_name in _OPTIONS.values():
        current = normalize(values.get(dest))
        if current is None and env_name is not None:
            current = normalize(env.get(env_name))
        values[dest] = current
    for required in ("--inputs", "--outputs-path"):
        if values[_OPTIONS[required][0]] is None:
            raise UsageError(f"a0: option {required} is required")
    opts = A0Options(values, resolver, resolver_args)
    opts.argv = args
    return opts


def _option(args: list[str], i: int) -> tuple[str, str, int]:
    """Return ``(long name, value, tokens used)`` for the option at ``args[i]``."""
    arg = args[i]
    if arg.startswith("--") and "=" in arg:
        name, value = arg.split("=", 1)
        if name not in _OPTIONS:
            raise UsageError(f"a0: no such option: {name}")
        return name, value, 1
    name = _SHORT.get(arg, arg)
    if name not in _OPTIONS:
        if arg.startswith("-"):
            raise UsageError(f"a0: no such option: {arg}")
        raise UsageError(f"a0: unexpected argument {arg!r} (resolver arguments follow --resolver CLASS)")
    if i + 1 >= len(args):
        raise UsageError(f"a0: option {arg} needs a value")
    return name, args[i + 1], 2


# ------------------------------------------------------------------ building


def a0_args(
    resolver: str,
    resolver_args: Sequence[str],
    *,
    version: str,
    bundle: str | None = None,
    dest: str = ".",
) -> list[str]:
    """Return the ``a0 ...`` container args of a Flyte 2 task, as the SDK's ``container_args`` builds them.

    Args:
        resolver: The resolver class (:data:`PREBUILT_RESOLVER` for taskbox's prebuilt executors).
        resolver_args: Its arguments.
        version: The task's version (``--version``).
        bundle: A ``--tgz`` code bundle URI, if the task has one.
        dest: ``--dest`` for the bundle.
    """
    args = [
        "a0",
        "--inputs",
        INPUT,
        "--outputs-path",
        OUTPUT_PREFIX,
        "--version",
        version,
        "--raw-data-path",
        RAW_OUTPUT_PREFIX,
        "--checkpoint-path",
        CHECKPOINT,
        "--prev-checkpoint",
        PREV_CHECKPOINT,
        "--run-name",
        RUN_NAME,
        "--name",
        ACTION_NAME,
        "--run-start-time",
        RUN_START_TIME,
    ]
    if bundle:
        args += ["--tgz", bundle, "--dest", dest]
    return [*args, "--resolver", resolver, *resolver_args]


def encode_template(data: bytes) -> str:
    """Encode a serialized ``TaskTemplate`` for the resolver args.

    URL-safe base64: no ``{{`` for the backend's placeholder substitution to touch, no shell-special
    characters.
    """
    return _TEMPLATE_PREFIX + base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def decode_template(text: str, limit: int) -> bytes:
    """Decode :func:`encode_template`'s text.

    Args:
        text: The encoded template.
        limit: Largest accepted decoded size (``TASKBOX_MAX_TEMPLATE_BYTES``).

    Raises:
        ValueError: Not an encoded template, not base64, or over ``limit``.
    """
    if not text.startswith(_TEMPLATE_PREFIX):
        raise ValueError(f"an encoded template starts with {_TEMPLATE_PREFIX!r}")
    body = text[len(_TEMPLATE_PREFIX) :]
    if len(body) * 3 // 4 > limit:
        raise ValueError(f"the encoded template is over {limit} bytes")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ValueError(f"the encoded template is not URL-safe base64: {exc}") from None
