"""``taskbox run``: run one task with plain files in and out, and judge it by its exit code.

Why: Flyte reads ``outputs.pb``/``error.pb`` and ignores the exit code; Argo Workflows, Kubeflow
Pipelines, Airflow's KubernetesPodOperator, AWS Batch and ``docker run`` pass strings and files and decide
success and retries by the exit code. ``taskbox run`` serves them with the same pipeline
(:mod:`taskbox.entrypoint.pipeline`), executors, resolvers, literal engine and commit protocol as
``taskbox execute``: inputs as JSON/YAML values (or ``.pb``), flags
or ``TASKBOX_INPUT_<NAME>``; outputs as ``outputs.pb``, ``outputs.json`` and one file per output (Flyte's
copilot layout, so an Argo output parameter or Airflow's ``/airflow/xcom/return.json`` can point at them);
``--output-file outputs.pickle=PATH`` writes the same values as a pickle of builtins, which Airflow's
DockerOperator (``retrieve_output``) unpickles into a dict XCom.

Exit codes (:data:`EXIT_CODES`): 0 success; 1 user error (retrying will not help); 3 system error that
is not recoverable (object not found, access denied, broken plugin); 75 recoverable error (``EX_TEMPFAIL``:
storage or network trouble, or a user's ``RecoverableError``), the one to retry on; 143 SIGTERM
(recoverable too); 2 malformed command line.

Invariants:
    * Every flag has an environment variable (:data:`ENV`); a flag wins over its variable.
    * Outputs appear only on success, written before ``outputs.pb``, which is written last; a failure
      removes a previous run's outputs and writes ``error.json`` and then ``error.pb`` (see
      :mod:`taskbox.entrypoint.commit`). ``outputs.json`` is printed on stdout unless ``--quiet``.
    * ``taskbox execute``'s start-up is untouched: this module loads only for ``taskbox run``.
    * Under Dagster Pipes (``DAGSTER_PIPES_CONTEXT`` set) the run also reports to Dagster
      (:mod:`taskbox.entrypoint.pipes`: extras as inputs, outputs after the commit, ``closed`` last); exit
      codes and files are the same.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskbox import settings
from taskbox.entrypoint import commit
from taskbox.entrypoint.exitcodes import (
    EXIT_CODES,
    EXIT_OK,
    EXIT_RECOVERABLE,
    EXIT_SYSTEM,
    EXIT_TERMINATED,
    EXIT_USAGE,
    EXIT_USER,
    exit_code,
)
from taskbox.entrypoint.pipeline import Steps, default_outputs_dir
from taskbox.entrypoint.signals import TerminationGuard

if TYPE_CHECKING:
    from taskbox.entrypoint.resolvers import LoadedTask

__all__ = ["ENV", "EXIT_CODES", "EXIT_OK", "EXIT_RECOVERABLE", "EXIT_SYSTEM", "EXIT_TERMINATED", "EXIT_USAGE",
           "EXIT_USER", "STEPS", "default_outputs_dir", "exit_code", "main", "parse", "parser"]  # fmt: skip

log = logging.getLogger("taskbox.run")

#: Flag -> environment variable (a flag wins over its variable).
ENV = {
    "template": "TASKBOX_TEMPLATE",
    "executor": "TASKBOX_EXECUTOR",
    "config": "TASKBOX_CONFIG",
    "interface": "TASKBOX_INTERFACE",
    "inputs": "TASKBOX_INPUTS",
    "outputs": "TASKBOX_OUTPUTS",
    "raw_output_prefix": "TASKBOX_RAW_OUTPUT_PREFIX",
    "checkpoint_path": "TASKBOX_CHECKPOINT_PATH",
    "prev_checkpoint": "TASKBOX_PREV_CHECKPOINT",
    "progress_file": "TASKBOX_PROGRESS_FILE",
    "log_format": "TASKBOX_LOG_FORMAT",
    "log_level": "TASKBOX_LOG_LEVEL",
    "quiet": "TASKBOX_QUIET",
    "image": "TASKBOX_IMAGE",
    "output_file": "TASKBOX_OUTPUT_FILES",
}
OUTPUTS_JSON = "outputs.json"
#: ``--output-file outputs.pickle=PATH``: the plain outputs as a pickle (Airflow DockerOperator's ``retrieve_output``).
OUTPUTS_PICKLE = "outputs.pickle"
#: Readable by every Python 3.4+: the reader is the orchestrator's worker, not this image's Python.
PICKLE_PROTOCOL = 4
ERROR_JSON = "error.json"
RAW_DIR = "raw"
_RESERVED = frozenset({commit.OUTPUTS_FILE, commit.ERROR_FILE, OUTPUTS_JSON, OUTPUTS_PICKLE, ERROR_JSON})
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$")
_TRUTHY = settings.TRUTHY
STEPS = 5


def _env(environ: Mapping[str, str], key: str) -> str | None:
    from taskbox.entrypoint.cmdline import normalize

    return normalize(environ.get(ENV[key]))


def parser(environ: Mapping[str, str]) -> Any:
    """Build the argparse parser of ``taskbox run``, its defaults taken from ``environ``."""
    import argparse

    def env(key: str) -> str | None:
        return _env(environ, key)

    codes = "; ".join(f"{code}: {what}" for code, what in EXIT_CODES.items())
    p = argparse.ArgumentParser(
        prog="taskbox run",
        description="Run one task with plain JSON/YAML inputs and outputs; the exit code tells the outcome.",
        epilog=f"Every option also comes from its environment variable (TASKBOX_TEMPLATE, ...); input values "
        f"also from TASKBOX_INPUT_<NAME>. Exit codes: {codes}.",
    )
    what = p.add_argument_group("what to run (a template, or an executor and its config)")
    what.add_argument("--template", default=env("template"), help="TaskTemplate: .pb, .json, .yaml, or inline")
    what.add_argument("--executor", default=env("executor"), help="executor name (sqlite, sql, http, echo, ...)")
    what.add_argument("--config", default=env("config"), help="the executor's config: JSON/YAML file, URI or inline")
    what.add_argument("--interface", default=env("interface"), help="{inputs: {name: type}, outputs: {...}}")
    io = p.add_argument_group("inputs and outputs")
    io.add_argument("--inputs", default=env("inputs"), help="inputs: .pb LiteralMap, or a JSON/YAML object")
    io.add_argument("--input", action="append", default=[], metavar="NAME=VALUE", help="one input (repeatable)")
    io.add_argument("--outputs", default=env("outputs"), help="directory or URI for the outputs (default: a temp dir)")
    io.add_argument("--output-file", action="append", metavar="NAME=PATH",
                    help="also copy output NAME (or outputs.json) to PATH, e.g. /airflow/xcom/return.json; "
                    "outputs.pickle=PATH writes outputs.json's values as a pickle (builtins only)")  # fmt: skip
    io.add_argument("--raw-output-prefix", default=env("raw_output_prefix"), help="where data goes (OUTPUTS/raw)")
    io.add_argument("--checkpoint-path", default=env("checkpoint_path"), help="where the task writes checkpoints")
    io.add_argument("--prev-checkpoint", default=env("prev_checkpoint"), help="a previous attempt's checkpoint")
    io.add_argument("-q", "--quiet", action="store_true", default=(env("quiet") or "").lower() in _TRUTHY,
                    help="do not print outputs.json on stdout")  # fmt: skip
    obs = p.add_argument_group("logs and progress")
    obs.add_argument("--progress-file", default=env("progress_file") or environ.get("ARGO_PROGRESS_FILE") or None,
                     help="write progress as N/M here (default: ARGO_PROGRESS_FILE)")  # fmt: skip
    obs.add_argument("--log-format", default=env("log_format") or "auto", choices=("auto", "json", "text"),
                     help="auto: text on a terminal, JSON lines otherwise")  # fmt: skip
    obs.add_argument("--log-level", default=env("log_level"), help="DEBUG, INFO (default), WARNING, ERROR")
    p.add_argument("--image", default=env("image"), help="run inside this image variant or reference (Docker)")
    return p


def parse(argv: list[str], environ: Mapping[str, str]) -> Any:
    """Parse ``taskbox run``'s arguments; options not given come from ``environ`` (:data:`ENV`)."""
    ns = parser(environ).parse_args(argv)
    if ns.output_file is None:
        ns.output_file = _split_list(_env(environ, "output_file"))
    return ns


def _split_list(value: str | None) -> list[str]:
    """``TASKBOX_OUTPUT_FILES``: ``name=path`` pairs separated by commas."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class _Run(Steps):
    """One run's hooks into the pipeline (:mod:`taskbox.entrypoint.pipeline`) and its plain-IO commit."""

    def __init__(self, ns: Any, environ: Mapping[str, str], formatter: Any) -> None:
        from taskbox.entrypoint.runlog import Progress

        super().__init__(ns.outputs, checkpoint_path=ns.checkpoint_path, prev_checkpoint=ns.prev_checkpoint, log=log)
        self.ns = ns
        self.environ = environ
        self.formatter = formatter
        self.progress = Progress(STEPS, ns.progress_file)
        self.output_names: list[str] = []
        self.copies: list[tuple[str, str]] = []
        self.spec: Any = None
        self.raw: Any = None
        self.pipes: Any = None  # a Dagster Pipes session (entrypoint/pipes.py) when DAGSTER_PIPES_CONTEXT is set

    def load(self, working_dir: str) -> LoadedTask:
        """Resolve what to run (template, or executor + config), install its bundle, load its task."""
        from taskbox.entrypoint import runspec
        from taskbox.entrypoint.cmdline import TEMPLATE_PATH
        from taskbox.entrypoint.resolvers import TEMPLATE_RESOLVERS, load_task

        ns = self.ns
        if settings.string("DAGSTER_PIPES_CONTEXT", environ=self.environ):  # Dagster started us: speak Pipes
            from taskbox.entrypoint import pipes

            self.pipes = pipes.open_session(self.environ, exit_code)
        extras = self.pipes.extras if self.pipes is not None else None
        self.raw = runspec.gather_inputs(ns.inputs, ns.input, self.environ, extras)
        spec = self.spec = runspec.resolve(
            template_ref=ns.template,
            executor_ref=ns.executor,
            config_ref=ns.config,
            interface_ref=ns.interface,
            raw=self.raw,
        )
        self.formatter.fields["executor"] = spec.executor or spec.resolver
        unused = self.raw.unused_extras(set(spec.template.interface.inputs.variables))
        if unused:
            log.info("Dagster Pipes extras that are not inputs of the task, left alone: %s", ", ".join(unused))
        self.formatter.fields["task"] = spec.template.id.name
        self.output_names = self._check_output_names(spec.template)
        self.copies = self._check_output_files(self.output_names)
        self.progress.step("template ready")
        if spec.prepare is not None:
            spec.prepare()
        if spec.resolver in TEMPLATE_RESOLVERS:  # handed over parsed: read and validated once
            task = load_task(spec.resolver, spec.args_for(TEMPLATE_PATH), working_dir, template=spec.template)
        else:  # another resolver gets the template's path, if its args name it
            path = os.path.join(working_dir, "task.pb")
            if None in spec.resolver_args:
                with open(path, "wb") as fh:
                    fh.write(spec.template.SerializeToString())
            task = load_task(spec.resolver, spec.args_for(path), working_dir)
        self.progress.step(f"loaded {task.name}")
        return task

    def raw_output_prefix(self) -> str:
        from taskbox import storage

        return self.ns.raw_output_prefix or storage.join(self.ns.outputs, RAW_DIR)

    def read_inputs(self, task: LoadedTask, conversion: Any) -> dict[str, bytes]:
        from taskbox.entrypoint import runspec

        return runspec.input_literals(self.spec.template, self.raw, conversion)

    def step(self, message: str) -> None:
        self.progress.step(message)

    def _check_output_names(self, template: Any) -> list[str]:
        from taskbox.errors import TemplateError

        names = list(template.interface.outputs.variables)
        taken = set(_RESERVED) | ({RAW_DIR} if not self.ns.raw_output_prefix else set())
        for name in names:
            if not _SAFE_NAME.match(name) or name in taken:
                raise TemplateError(
                    f"output {name!r} cannot be a file of its own under --outputs "
                    f"(names are letters, digits, '_', '-', '.'; reserved: {', '.join(sorted(taken))})"
                )
        return names

    def _check_output_files(self, names: list[str]) -> list[tuple[str, str]]:
        from taskbox.errors import ConfigError

        copies = []
        for pair in self.ns.output_file:
            name, eq, path = pair.partition("=")
            if not eq or not path or (name not in names and name not in (OUTPUTS_JSON, OUTPUTS_PICKLE)):
                raise ConfigError(
                    f"--output-file takes NAME=PATH with NAME one of "
                    f"{', '.join([*names, OUTPUTS_JSON, OUTPUTS_PICKLE])}; got {pair!r}"
                )
            copies.append((name, path))
        return copies

    def commit_success(self, outputs: Any) -> str:
        """Commit ``outputs`` (serialized literals by name) with their plain-IO companions; return ``outputs.json``."""
        from taskbox.entrypoint.plainio import literal_to_plain, render_output_file
        from taskbox.literals.wire import parse_literal

        plain = {name: literal_to_plain(parse_literal(data)) for name, data in outputs.literals.items()}
        document = json.dumps(plain, ensure_ascii=False, default=str)
        companions = {name: render_output_file(value) for name, value in plain.items()}
        companions[OUTPUTS_JSON] = document.encode("utf-8")
        stale = (ERROR_JSON, *(n for n in self._previous_outputs() if n not in plain))
        commit.commit_outputs(self.ns.outputs, outputs, companions=companions, stale=stale)
        if self.copies:
            from taskbox import storage

            for name, path in self.copies:  # committed files (or the pickle), where orchestrators name them
                storage.write_bytes(path, _pickled(document) if name == OUTPUTS_PICKLE else companions[name])
        self.progress.step("outputs committed")
        log.info("outputs committed under %s", self.ns.outputs)
        if self.pipes is not None:  # after the commit: Dagster hears only of committed outputs
            self.pipes.report_success(outputs, document, self.ns.outputs)
            self.pipes.close()
        return document

    def _previous_outputs(self) -> list[str]:
        """Output names an earlier run listed in ``outputs.json`` under the same prefix (their files are stale)."""
        from taskbox import storage
        from taskbox.errors import TaskboxError

        try:
            previous = json.loads(storage.read_bytes(storage.join(self.ns.outputs, OUTPUTS_JSON), max_size=1 << 26))
        except (TaskboxError, ValueError):
            return []
        if not isinstance(previous, dict):
            return []
        return [n for n in previous if isinstance(n, str) and _SAFE_NAME.match(n) and n not in _RESERVED]

    def commit_failure(self, failure: BaseException) -> None:
        """Commit ``error.json`` and ``error.pb`` for ``failure`` (never raises: the exit code still tells)."""
        code, origin, recoverable, message = commit.describe(failure)
        first_line = message.splitlines()[0] if message else ""
        line = (
            f"taskbox run: failed ({code}, {origin}, {'recoverable' if recoverable else 'non-recoverable'}): "
            f"{first_line}"
        )
        print(line, file=sys.stderr)
        document = {
            "code": code,
            "message": message,
            "origin": origin,
            "kind": "RECOVERABLE" if recoverable else "NON_RECOVERABLE",
            "recoverable": recoverable,
            "exit_code": exit_code(failure),
        }
        companions = {ERROR_JSON: json.dumps(document, ensure_ascii=False).encode("utf-8")}
        stale = (OUTPUTS_JSON, *dict.fromkeys([*self.output_names, *self._previous_outputs()]))
        try:
            commit.commit_error(self.ns.outputs, failure, companions=companions, stale=stale)
        except BaseException as exc:  # noqa: BLE001 - the exit code still tells the outcome
            from taskbox import redaction

            print(
                f"taskbox run: could not write the error document under {self.ns.outputs}: "
                f"{redaction.redact(str(exc))}",
                file=sys.stderr,
            )
        if self.pipes is not None:  # last: closed with the error, after the error document
            self.pipes.log("ERROR", line)
            self.pipes.close(failure, exit_code(failure))


def _pickled(document: str) -> bytes:
    """``outputs.json``'s values as a pickle: built-in types only (dict, list, str, int, float, bool, None).

    Made from the JSON text, never from taskbox objects, so unpickling imports nothing (a reader may use a
    restricted ``Unpickler``) and needs no taskbox where it runs.
    """
    import pickle

    return pickle.dumps(json.loads(document), protocol=PICKLE_PROTOCOL)


def main(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    """``taskbox run``.

    Returns:
        The exit code (:data:`EXIT_CODES`).

    """
    environ = os.environ if environ is None else environ
    guard = TerminationGuard()
    guard.install()
    ns = parse(argv, environ)
    if ns.image:
        from taskbox.entrypoint.runimage import run_in_image

        return run_in_image(ns, argv, environ)
    from taskbox.entrypoint import runlog
    from taskbox.entrypoint.pipeline import run_committed, run_steps

    formatter = runlog.configure(ns.log_format, ns.log_level)
    if not ns.outputs:
        ns.outputs = default_outputs_dir()
        log.info("no --outputs given: writing them under %s", ns.outputs)
    elif "://" not in ns.outputs:
        ns.outputs = os.path.abspath(ns.outputs)  # outputs.json names data by absolute paths
    run = _Run(ns, environ, formatter)
    outcome = run_committed(
        guard,
        lambda working_dir, cancelled: run_steps(run, working_dir, cancelled),
        on_success=run.commit_success,
        on_failure=run.commit_failure,
    )
    if guard.received:
        return EXIT_TERMINATED
    if outcome.failure is not None:
        return exit_code(outcome.failure)
    if not ns.quiet and outcome.result is not None:
        print(outcome.result)
    return EXIT_OK
