"""Run inside ``.venv-flytekit``: flytekit's side of the taskbox.flytekit tests, as one JSON line on stdout.

MODULE is a workflow module beside this file (``fk_workflows``, ``fk_greet``, ``fk_azure``), configured by the
environment; NAME one of its ``TASKS``; KWARGS a JSON object. Tables are printed as lists of rows. A DIR, PB or
DEST may be a remote URI (``abfs://...``): flytekit's own FileAccessProvider (fsspec) writes and reads it.

Commands:
    local MODULE WF KWARGS     call the workflow WF as a plain Python call (flytekit's local execution);
                               prints ``{"result": ...}`` or ``{"error": {"type", "code", "origin", "recoverable",
                               "message"}}``.
    task MODULE NAME KWARGS    call the task alone; prints ``{"result": {output: value}}`` or the error.
    specs TGZ DIR              read ``pyflyte package``'s archive; for each taskbox task write DIR/<name>.task.pb
                               (its TaskTemplate, as propeller uploads it for ``{{.taskTemplatePath}}``) and
                               print its args, image, type, custom, secrets and metadata.
    inputs MODULE NAME DIR KWARGS  write DIR/inputs.pb, encoded by flytekit with the task's interface.
    outputs MODULE NAME PB     read an outputs.pb with flytekit and the task's interface.
    template MODULE NAME DEST  serialize the task's TaskTemplate (flytekit's get_serializable) to DEST; print its args.
    error PB                   read an error.pb with flytekit's models.
    define WHAT                define a task with a bad configuration; print the exception.
    metadata                   the metadata, image and secrets of tasks defined with flytekit options.
    mapping                    the exception each kind of error document becomes, locally and under pyflyte-execute.
    images LOCK                the serialized image of each task class defined with LOCK as the image lock.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import sys
import tarfile
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).parent))

CLASS_PATH = "taskbox.flytekit.executors."


def plain(value):
    """A JSON-able form of a native value: tables as lists of rows."""
    import pandas as pd
    from flytekit.types.structured import StructuredDataset

    if isinstance(value, StructuredDataset):
        return json.loads(value.open(pd.DataFrame).all().to_json(orient="records"))
    if isinstance(value, pd.DataFrame):
        return json.loads(value.to_json(orient="records"))
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def failure(exc: BaseException) -> dict:
    return {
        "error": {
            "type": type(exc).__name__,
            "module": type(exc).__module__,
            "code": getattr(exc, "code", None),
            "origin": getattr(exc, "origin", None),
            "recoverable": getattr(exc, "recoverable", None),
            "message": str(exc),
        }
    }


def local(module: str, wf: str, kwargs: str) -> dict:
    workflow = getattr(importlib.import_module(module), wf)
    try:
        return {"result": plain(workflow(**json.loads(kwargs)))}
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return failure(exc)


def _task(module: str, name: str):
    return importlib.import_module(module).TASKS[name]


def task(module: str, name: str, kwargs: str) -> dict:
    t = _task(module, name)
    try:
        value = t(**json.loads(kwargs))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return failure(exc)
    names = list(t.python_interface.outputs)
    values = [value] if len(names) == 1 else list(value)
    return {"result": {n: plain(v) for n, v in zip(names, values, strict=True)}}


def specs(tgz: str, out: str) -> dict:
    from flyteidl.admin import task_pb2
    from google.protobuf.json_format import MessageToDict

    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tgz) as tar:
            tar.extractall(tmp, filter="data")
        for path in sorted(pathlib.Path(tmp).glob("*.pb")):
            spec = task_pb2.TaskSpec()
            try:
                spec.ParseFromString(path.read_bytes())
            except Exception:  # noqa: BLE001 - a workflow or launch plan spec
                continue
            template = spec.template
            if not template.HasField("container"):
                continue
            args = list(template.container.args)
            name = template.id.name
            pathlib.Path(out, f"{name}.task.pb").write_bytes(template.SerializeToString())
            found[name] = {
                "taskbox": any(a.startswith(CLASS_PATH) for a in args),
                "args": args,
                "command": list(template.container.command),
                "image": template.container.image,
                "type": template.type,
                "custom": MessageToDict(template.custom),
                "secrets": [MessageToDict(s) for s in template.security_context.secrets],
                "retries": template.metadata.retries.retries,
                "timeout": template.metadata.timeout.seconds,
                "interface": MessageToDict(template.interface),
            }
    return found


def _write(dest: str, data: bytes) -> None:
    """Write a local file, or a remote object through flytekit's FileAccessProvider (as its entrypoint does)."""
    if "://" not in dest:
        pathlib.Path(dest).write_bytes(data)
        return
    from flytekit.core.context_manager import FlyteContextManager

    with tempfile.TemporaryDirectory() as tmp:
        local = pathlib.Path(tmp, "data")
        local.write_bytes(data)
        FlyteContextManager.current_context().file_access.put_data(str(local), dest)


def _read(src: str) -> bytes:
    """Read a local file, or a remote object through flytekit's FileAccessProvider."""
    if "://" not in src:
        return pathlib.Path(src).read_bytes()
    from flytekit.core.context_manager import FlyteContextManager

    with tempfile.TemporaryDirectory() as tmp:
        local = pathlib.Path(tmp, "data")
        FlyteContextManager.current_context().file_access.get_data(src, str(local))
        return local.read_bytes()


def inputs(module: str, name: str, out: str, kwargs: str) -> dict:
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine

    t = _task(module, name)
    ctx = FlyteContextManager.current_context()
    literal_map = TypeEngine.dict_to_literal_map(ctx, json.loads(kwargs), t.python_interface.inputs)
    dest = f"{out.rstrip('/')}/inputs.pb"
    _write(dest, literal_map.to_flyte_idl().SerializeToString())
    return {"written": dest}


def outputs(module: str, name: str, pb: str) -> dict:
    from flyteidl.core import literals_pb2
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import LiteralMap

    t = _task(module, name)
    ctx = FlyteContextManager.current_context()
    literal_map = LiteralMap.from_flyte_idl(literals_pb2.LiteralMap.FromString(_read(pb)))
    values = TypeEngine.literal_map_to_kwargs(ctx, literal_map, t.python_interface.outputs)
    return {"result": {n: plain(v) for n, v in values.items()}}


def template(module: str, name: str, dest: str) -> dict:
    from collections import OrderedDict

    from flytekit.configuration import Image, ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    settings = SerializationSettings(image_config=ImageConfig(default_image=Image("d", "docker.io/d", "1")))
    serialized = get_serializable(OrderedDict(), settings, _task(module, name)).template
    _write(dest, serialized.to_flyte_idl().SerializeToString())
    return {"written": dest, "args": list(serialized.container.args)}


def error(pb: str) -> dict:
    from flyteidl.core import errors_pb2
    from flytekit.models.core.errors import ErrorDocument

    doc = ErrorDocument.from_flyte_idl(errors_pb2.ErrorDocument.FromString(pathlib.Path(pb).read_bytes()))
    e = doc.error
    return {"code": e.code, "kind": int(e.kind), "origin": int(e.origin), "message": e.message}


def define(what: str) -> dict:
    from taskbox.flytekit import HTTPJobTask, HTTPTask, SQLiteTask, TaskboxTask

    db = "/data/app.db"
    try:
        if what == "bad-option":
            SQLiteTask("t", "SELECT 1 AS n", uri=db, timeout_seconds=-5, outputs={"n": int})
        elif what == "unknown-option":
            SQLiteTask("t", "SELECT 1 AS n", uri=db, no_such_field=1, outputs={"n": int})
        elif what == "missing-uri":
            SQLiteTask("t", "SELECT 1 AS n")
        elif what == "bad-method":
            HTTPTask("t", "https://example.com/x", method="GET FOO")
        elif what == "bad-job":
            jobs = "https://example.com/jobs"
            HTTPJobTask("t", submit_url=jobs, status_url=jobs + "/{{ .job.run }}")
        elif what == "unknown-executor":
            TaskboxTask("t", executor="no-such-executor")
        elif what == "class-path-executor":
            TaskboxTask("t", executor="taskbox.executors.echo:EchoExecutor")
        elif what == "plugin-without-image":
            # tests/plugins' entry point (on PYTHONPATH): found, validated, but in no catalog image
            TaskboxTask("t", executor="test-shout", config={"text": "hi $x"}, inputs={"x": str}, outputs={"shout": str})
        elif what == "bad-env-var":
            HTTPTask("t", "https://example.com/x",
                     secret_headers={"X-Key": {"group": "api", "key": "k", "env_var": "not valid"}})  # fmt: skip
        elif what == "metadata-and-fields":
            from flytekit import TaskMetadata

            SQLiteTask("t", "SELECT 1 AS n", uri=db, outputs={"n": int}, metadata=TaskMetadata(), retries=2)
        else:
            raise SystemExit(f"unknown definition {what!r}")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return {"type": type(exc).__name__, "module": type(exc).__module__, "message": str(exc)}
    return {"type": None}


def metadata() -> dict:
    from flytekit import Resources
    from flytekit.configuration import Image, ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    from taskbox.flytekit import SQLiteTask

    settings = SerializationSettings(image_config=ImageConfig(default_image=Image("d", "docker.io/d", "1")))

    def template(t):
        from collections import OrderedDict

        return get_serializable(OrderedDict(), settings, t).template

    def one(**options):
        return SQLiteTask("t", "SELECT 1 AS n", uri="/data/app.db", outputs={"n": int}, **options)

    cached = template(one(cache=True, retries=3, interruptible=True, requests=None))
    again = template(one(cache=True, retries=3, interruptible=True))
    moved = template(SQLiteTask("t", "SELECT 1 AS n", uri="/data/other.db", outputs={"n": int}, cache=True))
    pinned = template(one(cache=True, cache_version="v7", image="registry.example/sqlite:1"))
    from flytekit import Secret

    from taskbox.flytekit import HTTPTask

    secret_headers = {"A": {"group": "api", "key": "token"}, "B": {"group": "db", "key": "pw", "env_var": "DB_PW"}}
    extra = [Secret(group="extra", key="k")]
    http = template(HTTPTask("h", "https://example.com/x", secret_headers=secret_headers, secret_requests=extra,
                             requests=Resources(cpu="2")))  # fmt: skip
    return {
        "discoverable": cached.metadata.discoverable,
        "version": cached.metadata.discovery_version,
        "same_version": cached.metadata.discovery_version == again.metadata.discovery_version,
        "moved_version_differs": moved.metadata.discovery_version != cached.metadata.discovery_version,
        "retries": cached.metadata.retries.retries,
        "interruptible": cached.metadata.interruptible,
        "pinned": [pinned.metadata.discovery_version, pinned.container.image],
        "config_is_the_model": type(one().task_config).__name__,
        "secrets": [
            [s.group, s.key, s.env_var, Secret.MountType(s.mount_requirement).name]
            for s in http.security_context.secrets
        ],
        "cpu": [r.value for r in http.container.resources.requests],
    }


def mapping() -> dict:
    from taskbox.authoring.base import TaskFailed as Committed
    from taskbox.flytekit.executors import flytekit_error

    cases = {
        "user": ("USER:SqlRejected", "USER", False),
        "user-recoverable": ("USER:Recoverable", "USER", True),
        "system": ("SYSTEM:StorageTransient", "SYSTEM", True),
        "system-fatal": ("SYSTEM:Unknown", "SYSTEM", False),
    }
    answer = {}
    for case, (code, origin, recoverable) in cases.items():
        committed = Committed("boom", code=code, origin=origin, recoverable=recoverable)
        local = flytekit_error(committed, local=True)
        remote = flytekit_error(committed, local=False)
        value = getattr(remote, "value", remote)
        answer[case] = {
            "local": [type(local).__name__, local.code, local.origin, local.recoverable],
            "remote": [type(remote).__name__, type(value).__name__, getattr(remote, "error_code", None)],
        }
    return answer


def images(lock: str) -> dict:
    from collections import OrderedDict

    from flytekit.configuration import Image, ImageConfig, SerializationSettings
    from flytekit.tools.translator import get_serializable

    from taskbox.flytekit import HTTPJobTask, HTTPTask, SQLiteTask, SQLTask
    from taskbox.images.lock import using_lock

    settings = SerializationSettings(image_config=ImageConfig(default_image=Image("d", "docker.io/d", "1")))
    with using_lock(pathlib.Path(lock)):
        tasks = {
            "sqlite": SQLiteTask("a", "SELECT 1 AS n", uri="/data/app.db", outputs={"n": int}),
            "sql": SQLTask("b", "SELECT 1 AS n", uri="postgresql://reader@db:5432/sales", outputs={"n": int}),
            "http": HTTPTask("c", "https://example.com/x"),
            "http-job": HTTPJobTask("d", submit_url="https://example.com/j", status_url="https://example.com/j/1"),
        }
    return {name: get_serializable(OrderedDict(), settings, t).template.container.image for name, t in tasks.items()}


def main(argv: list[str]) -> None:
    command, *rest = argv
    handlers = {
        "local": local,
        "task": task,
        "specs": specs,
        "inputs": inputs,
        "outputs": outputs,
        "template": template,
        "error": error,
        "define": define,
        "metadata": metadata,
        "mapping": mapping,
        "images": images,
    }
    if command not in handlers:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(handlers[command](*rest), default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
