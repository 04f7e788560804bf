"""``taskbox template SPEC --out DIR``: write a task's ``TaskTemplate`` (and an ``inputs.pb``) from YAML/JSON.

Why: an orchestrator that is not driven from Python (Argo, a shell script, a Go service) still needs the
protobuf files a taskbox container reads: ``{{.taskTemplatePath}}`` and ``inputs.pb``. The spec names an
executor and its config as data; the template is built by the same code as
:class:`taskbox.authoring.ExecutorTask`'s (:mod:`taskbox.entrypoint.taskspec`), so both give equal templates.

The spec (a JSON/YAML file, a URI, or inline)::

    name: count_words                 # TaskTemplate.id.name (required)
    executor: wordcount               # the executor's registry name (required)
    config: {min_length: 3}           # validated by the executor's Config model
    inputs: {text: str}               # optional: added to the executor's declared interface (a type here wins)
    outputs: {count: int}             # optional, as inputs
    image: ghcr.io/me/taskbox-wordcount:0.1.0   # optional: a built-in's catalog image, else the base image
    retries: 2                        # optional
    values: {text: "a few words"}     # optional: written as DIR/inputs.pb

Writes ``DIR/task.pb`` (and ``DIR/task.json``, protobuf's JSON mapping, with ``--json``) and, when the spec
has ``values``, ``DIR/inputs.pb``; prints each path written.

Invariants:
    * ``values`` are converted by the declared types with ``taskbox run --inputs``' rules
      (:func:`taskbox.entrypoint.plainio.plain_to_literal`): a file or table value is its URI, kept in place.
    * A failure prints one line, ``taskbox template: failed (CODE, ORIGIN, recoverable|non-recoverable):
      message``, and exits with ``taskbox run``'s code for it (:func:`taskbox.entrypoint.exitcodes.exit_code`);
      nothing is written then.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from taskbox.errors import ConfigError, InputError, TaskboxError

__all__ = ["SPEC_KEYS", "build", "main", "parser"]

#: The keys of a spec (``name`` and ``executor`` required).
SPEC_KEYS = ("name", "executor", "config", "inputs", "outputs", "image", "retries", "values")
TEMPLATE_FILE = "task.pb"
TEMPLATE_JSON = "task.json"
INPUTS_FILE = "inputs.pb"


def parser() -> Any:
    """The argparse parser of ``taskbox template``."""
    import argparse

    p = argparse.ArgumentParser(
        prog="taskbox template",
        description="Write a task's TaskTemplate (task.pb) and, with `values`, its inputs.pb from a YAML/JSON spec.",
        epilog="SPEC: {name, executor, config, inputs: {name: type}, outputs: {name: type}, image, retries, "
        "values: {name: value}}; inputs and outputs complete the executor's declared interface.",
    )
    p.add_argument("spec", help="the spec: a JSON/YAML file, a URI, or inline JSON/YAML")
    p.add_argument("--out", required=True, help="directory or URI to write task.pb (and inputs.pb) under")
    p.add_argument("--json", action="store_true", help="also write the template as protobuf JSON (task.json)")
    return p


def _spec(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ConfigError(f"a template spec is an object ({', '.join(SPEC_KEYS)}), not {type(doc).__name__}")
    unknown = sorted(str(k) for k in doc if k not in SPEC_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) in the template spec: {', '.join(unknown)}; known: {', '.join(SPEC_KEYS)}")
    for key in ("name", "executor"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise ConfigError(f"the template spec needs {key!r}: a non-empty string")
    for key in ("config", "inputs", "outputs", "values"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise ConfigError(f"{key!r} in the template spec must be an object, not {type(doc[key]).__name__}")
    if doc.get("image") is not None and (not isinstance(doc["image"], str) or not doc["image"]):
        raise ConfigError("'image' in the template spec must be a non-empty string")
    retries = doc.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"'retries' in the template spec must be a non-negative integer, got {retries!r}")
    return doc


def build(doc: Any, *, raw_output_prefix: str, working_dir: str) -> tuple[Any, Any]:
    """Build the template and, when the spec has ``values``, the inputs ``LiteralMap`` (else ``None``).

    Args:
        doc: The spec, as plain data.
        raw_output_prefix: Where a value's data would be written (values are URIs kept in place).
        working_dir: Scratch directory of the literal conversion.

    Raises:
        ConfigError: A malformed spec, a config that does not validate, a type that cannot be read.
        InputError: A value names no declared input, or does not fit its type.
        ExecutorNotFound / ExecutorNotInstalled / PluginInvalid: As
            :func:`taskbox.entrypoint.taskspec.resolve_executor_task`.
    """
    from taskbox.entrypoint.taskspec import build_template, resolve_executor_task

    spec = _spec(doc)
    task = resolve_executor_task(
        spec["executor"], spec.get("config"), inputs=spec.get("inputs"), outputs=spec.get("outputs")
    )
    template = build_template(
        name=spec["name"],
        task_type=task.task_type,
        custom=task.custom,
        inputs=task.inputs,
        outputs=task.outputs,
        image=spec.get("image") or task.default_image(),
        args=task.container_args(),
        retries=spec.get("retries", 0),
        secrets=[(s.group, s.key, s.group_version) for s in task.secrets],
    )
    from taskbox.entrypoint.template import check_readable

    check_readable(template, f"the template of task {spec['name']!r}")  # what the resolver will read back
    values = spec.get("values")
    if values is None:
        return template, None
    return template, _literal_map(values, task.inputs, raw_output_prefix, working_dir)


def _literal_map(values: Mapping[str, Any], types: Mapping[str, Any], raw_output_prefix: str, working_dir: str) -> Any:
    from flyteidl.core import literals_pb2

    from taskbox.entrypoint.plainio import plain_to_literal
    from taskbox.literals import ConversionContext

    ctx = ConversionContext(raw_output_prefix=raw_output_prefix, working_dir=working_dir)
    literal_map = literals_pb2.LiteralMap()
    for name, value in values.items():
        if name not in types:
            raise InputError(f"value {name!r} names no input of the task (declared: {sorted(types)})")
        literal_map.literals[name].CopyFrom(plain_to_literal(name, value, types[name], ctx))
    return literal_map


def main(argv: list[str]) -> int:
    """``taskbox template``.

    Returns:
        0, or ``taskbox run``'s exit code for the failure (2 for a malformed command line).
    """
    import tempfile

    from taskbox import storage
    from taskbox.entrypoint.exitcodes import EXIT_OK, exit_code
    from taskbox.entrypoint.plainio import load_document

    ns = parser().parse_args(argv)
    try:
        doc = load_document(ns.spec, what="template spec")
        with tempfile.TemporaryDirectory(prefix="taskbox-template-") as scratch:
            template, inputs = build(doc, raw_output_prefix=storage.join(ns.out, "raw"), working_dir=scratch)
        files = {TEMPLATE_FILE: template.SerializeToString()}
        if ns.json:
            from google.protobuf.json_format import MessageToJson

            files[TEMPLATE_JSON] = (MessageToJson(template, indent=2) + "\n").encode("utf-8")
        if inputs is not None:
            files[INPUTS_FILE] = inputs.SerializeToString()
        for file_name, data in files.items():
            uri = storage.join(ns.out, file_name)
            storage.write_bytes(uri, data)
            print(uri)
    except Exception as exc:  # noqa: BLE001 - one typed line and the exit code, never a traceback
        _report(exc)
        return exit_code(exc)
    return EXIT_OK


def _report(exc: BaseException) -> None:
    from taskbox import redaction
    from taskbox.entrypoint.commit import describe

    code, origin, recoverable, _ = describe(exc)
    message = exc.message if isinstance(exc, TaskboxError) else f"{type(exc).__name__}: {exc}"
    first_line = (message.splitlines() or [""])[0]
    print(
        f"taskbox template: failed ({code}, {origin}, {'recoverable' if recoverable else 'non-recoverable'}): "
        f"{redaction.redact(first_line)}",
        file=sys.stderr,
    )
