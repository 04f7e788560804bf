"""``@taskbox.task``: interface from hints, options, templates, plain calls and in-process runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import subprocess
import sys
from dataclasses import dataclass
from typing import NamedTuple, Optional

import pytest
from flyteidl.core import literals_pb2, tasks_pb2, types_pb2

import taskbox
from helpers import ROOT
from taskbox.authoring.base import TaskFailed
from taskbox.authoring.task import TASK_TYPE, Task, default_task_image
from taskbox.errors import ConfigError, InputError, UnsupportedType
from taskhelpers import sample_tasks

EXECUTE_ARGS = [
    "taskbox", "execute",
    "--inputs", "{{.input}}",
    "--output-prefix", "{{.outputPrefix}}",
    "--raw-output-data-prefix", "{{.rawOutputDataPrefix}}",
    "--checkpoint-path", "{{.checkpointOutputPrefix}}",
    "--prev-checkpoint", "{{.prevCheckpointPrefix}}",
    "--resolver", "taskbox.function",
    "--",
]  # fmt: skip


@dataclass
class Point:
    x: float
    y: float
    label: str = ""


class Stats(NamedTuple):
    mean: float
    count: int


@taskbox.task
def everything(
    n: int,
    ratio: float,
    text: str,
    flag: bool,
    xs: list[int],
    weights: dict[str, float],
    point: Point,
    data: taskbox.File,
    when: dt.datetime,
    maybe: Optional[int] = None,  # noqa: UP045 - the Optional spelling on purpose
    scale: float = 2.0,
) -> Stats:
    with open(data, encoding="utf-8") as fh:
        extra = len(fh.read())
    values = [x * scale for x in xs] + [point.x, point.y, float(extra)]
    return Stats(mean=sum(values) / len(values), count=len(values) + n + (maybe or 0))


@taskbox.task
def pair(a: int) -> tuple[int, str]:
    return a, str(a)


@taskbox.task
def nothing(a: int) -> None:
    assert a >= 0


@taskbox.task
def unannotated_return(a: int):
    return None


@taskbox.task(
    name="custom.name",
    retries=3,
    timeout=dt.timedelta(minutes=5),
    requests={"cpu": "500m", "mem": "1Gi"},
    limits={"cpu": 2, "memory": "2Gi", "gpu": 1},
    secrets=["db", ("api", "token"), ("vault", "key", "v2")],
    cache_version="1.0",
)
def configured(a: int) -> int:
    return a


@taskbox.task
async def async_double(a: int) -> int:
    await asyncio.sleep(0)
    return 2 * a


@taskbox.task
def moves_point(point: Point, dx: float = 1.0) -> Point:
    return Point(point.x + dx, point.y, point.label)


# ---------------------------------------------------------------- interface


def test_interface_from_hints():
    interface = everything.interface()
    inputs = {n: v.type for n, v in interface.inputs.variables.items()}
    S = types_pb2.SimpleType
    assert inputs["n"].simple == S.INTEGER
    assert inputs["ratio"].simple == S.FLOAT
    assert inputs["text"].simple == S.STRING
    assert inputs["flag"].simple == S.BOOLEAN
    assert inputs["when"].simple == S.DATETIME
    assert inputs["xs"].collection_type.simple == S.INTEGER
    assert inputs["weights"].map_value_type.simple == S.FLOAT
    assert inputs["point"].simple == S.STRUCT and inputs["point"].HasField("metadata")  # dataclass: msgpack STRUCT
    assert inputs["data"].blob.dimensionality == types_pb2.BlobType.SINGLE
    assert [v.simple for v in inputs["maybe"].union_type.variants] == [S.INTEGER, S.NONE]
    order = ["n", "ratio", "text", "flag", "xs", "weights", "point", "data", "when", "maybe", "scale"]
    assert list(everything.inputs) == order and set(inputs) == set(order)  # a proto map has no order
    outputs = {n: v.type for n, v in interface.outputs.variables.items()}
    assert list(everything.outputs) == ["mean", "count"] and set(outputs) == {"mean", "count"}  # NamedTuple fields
    assert (outputs["mean"].simple, outputs["count"].simple) == (S.FLOAT, S.INTEGER)


def test_output_naming_follows_flytekit():
    assert list(sample_tasks().add.outputs) == ["o0"]
    assert pair.outputs == {"o0": int, "o1": str}
    assert nothing.outputs == {} and unannotated_return.outputs == {}


def test_defaults_make_inputs_optional():
    assert everything.optional_inputs == frozenset({"maybe", "scale"})
    params = everything.parameters().parameters
    assert params["n"].required and not params["n"].HasField("default")
    assert params["scale"].default.scalar.primitive.float_value == 2.0 and not params["scale"].required
    assert params["maybe"].default == literals_pb2.Literal(scalar=literals_pb2.Scalar(none_type=literals_pb2.Void()))


def _undecorated(a: int, b) -> int:
    return a


@pytest.mark.parametrize(
    ("source", "error", "match"),
    [
        ("def f(a: int, b) -> int: ...", ConfigError, "input 'b' has no type hint"),
        ("def f(*args: int) -> int: ...", ConfigError, r"\*args/\*\*kwargs"),
        ("def f(**kw: int) -> int: ...", ConfigError, r"\*args/\*\*kwargs"),
        ("def f(a: int, /) -> int: ...", ConfigError, "positional-only parameter 'a'"),
        (
            "def f(a: bytes) -> int: ...",
            UnsupportedType,
            "input 'a': no literal conversion is known for the Python type bytes",
        ),
        ("def f(a: int) -> set: ...", UnsupportedType, "output 'o0'"),
        ("def f(a: int) -> tuple[int, ...]: ...", ConfigError, "no fixed length"),
        ("def f(a: int) -> tuple: ...", ConfigError, "bare tuple"),
        ("def f(a: 'Undefined') -> int: ...", ConfigError, "cannot resolve the type hints of 'f'.*NameError"),
        (
            "import collections\nP = collections.namedtuple('P', 'a b')\ndef f(a: int) -> P: ...",
            ConfigError,
            "untyped fields",
        ),
    ],
)
def test_bad_signatures_fail_at_decoration(source, error, match):
    namespace: dict = {}
    exec(source, namespace)
    with pytest.raises(error, match=match):
        taskbox.task(namespace["f"])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"retries": -1}, "retries must be a non-negative int"),
        ({"retries": True}, "retries must be a non-negative int"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"timeout": "1h"}, "timeout must be seconds or a timedelta"),
        ({"requests": {"cpus": "1"}}, "unknown resource 'cpus'"),
        ({"limits": {"cpu": ""}}, r"limits\['cpu'\] must be a quantity"),
        ({"secrets": [("",)]}, "a secret is a group name"),
        ({"secrets": [("g", 1)]}, "secret parts must be strings"),
        ({"cache_version": ""}, "cache_version must be a non-empty string"),
        ({"name": ""}, "task name must be a non-empty string"),
    ],
)
def test_bad_options_fail_at_decoration(options, match):
    with pytest.raises(ConfigError, match=match):
        taskbox.task(**options)(pair.function)


def test_decorating_a_non_function_fails():
    with pytest.raises(ConfigError, match="decorates a function"):
        taskbox.task(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="decorates a function"):
        taskbox.task(everything)


# ---------------------------------------------------------------- plain calls


def test_plain_calls_are_plain_python():
    assert configured(5) == 5
    assert pair(a=4) == (4, "4")
    assert moves_point(Point(1.0, 2.0)) == Point(2.0, 2.0)
    assert isinstance(configured, Task)
    assert configured.__name__ == "configured" and configured.__wrapped__.__name__ == "configured"
    assert sample_tasks().add.__doc__ == "Return ``a + b`` (``b`` defaults to 1)."


def test_async_task_called_plainly_returns_an_awaitable():
    coroutine = async_double(21)
    assert asyncio.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == 42
    assert async_double.is_async


# ---------------------------------------------------------------- templates


def test_template_with_bundle_has_the_exact_container_args():
    template = configured.template(image="registry.example/app:1", bundle="s3://b/bundles/abc.tar.gz", dest_dir="/root")
    assert list(template.container.args) == [
        "taskbox", "fast-execute", "--additional-distribution", "s3://b/bundles/abc.tar.gz",
        "--dest-dir", "/root", "--",
        *EXECUTE_ARGS, "task-module", "test_task", "task-name", "configured",
    ]  # fmt: skip
    assert list(template.container.command) == []
    assert template.container.image == "registry.example/app:1"


def test_template_without_bundle_runs_the_code_in_the_image():
    template = sample_tasks().add.template(image="img")
    assert list(template.container.args) == [*EXECUTE_ARGS, "task-module", "sample_tasks.tasks", "task-name", "add"]
    assert sample_tasks().add.template(bundle="s3://b/x.tar.gz").container.args[5] == "."  # default dest dir


def test_template_metadata_and_options():
    template = configured.template(bundle="gs://b/x.tar.gz", project="p", domain="d", version="v1")
    assert template.type == TASK_TYPE == "python-task"
    assert (template.id.project, template.id.domain, template.id.name, template.id.version) == (
        "p",
        "d",
        "custom.name",
        "v1",
    )
    md = template.metadata
    assert md.runtime.flavor == "taskbox" and md.runtime.version == taskbox.__version__
    assert md.retries.retries == 3
    assert md.timeout.ToTimedelta() == dt.timedelta(minutes=5)
    assert md.discoverable and md.discovery_version == "1.0"
    R = tasks_pb2.Resources
    requests = {R.ResourceName.Name(e.name): e.value for e in template.container.resources.requests}
    limits = {R.ResourceName.Name(e.name): e.value for e in template.container.resources.limits}
    assert requests == {"CPU": "500m", "MEMORY": "1Gi"}
    assert limits == {"CPU": "2", "MEMORY": "2Gi", "GPU": "1"}
    secrets = [(s.group, s.key, s.group_version) for s in template.security_context.secrets]
    assert secrets == [("db", "", ""), ("api", "token", ""), ("vault", "key", "v2")]
    assert list(template.interface.inputs.variables) == ["a"]


def test_template_defaults():
    template = sample_tasks().add.template()
    from taskbox.images.catalog import default_image

    assert default_task_image() == default_image("python") == template.container.image
    assert taskbox.__version__ in template.container.image
    assert template.id.name == "sample_tasks.tasks.add"
    assert template.metadata.retries.retries == 0 and not template.metadata.HasField("timeout")
    assert not template.metadata.discoverable and not template.container.HasField("resources")
    assert taskbox.task(timeout=90)(pair.function).timeout == dt.timedelta(seconds=90)


def test_tasks_that_cannot_be_named_in_container_args_refuse_to_build_templates():
    @taskbox.task
    def inner(a: int) -> int:
        return a

    with pytest.raises(ConfigError, match="define the function at module level"):
        inner.template()
    with pytest.raises(ConfigError, match="define the function at module level"):
        inner.run(a=1)
    namespace = {"__name__": "__main__", "taskbox": taskbox}
    exec("@taskbox.task\ndef main_task(a: int) -> int:\n    return a\n", namespace)
    with pytest.raises(ConfigError, match="defined in __main__"):
        namespace["main_task"].template()
    with pytest.raises(ConfigError, match="bundle must be a non-empty URI"):
        configured.template(bundle="")


# ---------------------------------------------------------------- in-process runs


def test_run_goes_through_the_pipeline(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("abcd")
    result = everything.run(
        n=1,
        ratio=0.5,
        text="t",
        flag=True,
        xs=[1, 2],
        weights={"a": 1.0},
        point=Point(3.0, 5.0),
        data=taskbox.File(str(data)),
        when=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    assert isinstance(result, Stats)
    assert result == Stats(mean=(2.0 + 4.0 + 3.0 + 5.0 + 4.0) / 5, count=6)


def test_run_shapes_of_results(tmp_path):
    assert pair.run(a=7) == (7, "7")
    assert nothing.run(a=1) is None
    assert async_double.run(a=4) == 8
    assert moves_point.run(point=Point(1.0, 1.0, "p")) == Point(2.0, 1.0, "p")  # dataclass back as a dataclass
    tasks = sample_tasks()
    assert tasks.add.run(a=1) == 2 and tasks.greet.run(name="x") == "hello, x"
    invoice = tasks.write_invoice.run(order=tasks.Order("cup", 2, 2.25))
    with open(invoice, encoding="utf-8") as fh:
        assert fh.read() == "2 x cup = 4.50 EUR\n"


def test_run_failures(tmp_path):
    with pytest.raises(TaskFailed) as info:
        sample_tasks().fail.run(message="nope")
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:ValueError", "USER", False)
    with pytest.raises(TaskFailed) as info:
        sample_tasks().flaky.run(message="later")
    assert (info.value.code, info.value.recoverable) == ("USER:Recoverable", True)
    with pytest.raises(TaskFailed, match="input 'a'") as info:
        pair.run()
    assert info.value.code == "USER:InvalidInput"
    with pytest.raises(InputError, match="input 'b' is not declared"):
        pair.run(a=1, b=2)
    with pytest.raises(InputError, match="input 'a' of task"):
        pair.run(a="not an int")


def test_runs_keep_their_files_in_workdir(tmp_path):
    assert pair.run_with({"a": 2}, workdir=str(tmp_path / "w")) == (2, "2")
    assert (tmp_path / "w" / "out" / "outputs.pb").is_file()
    assert (tmp_path / "w" / "inputs.pb").is_file()


def test_import_taskbox_stays_light():
    code = (
        "import sys, taskbox\n"
        "heavy = [m for m in sys.modules if m.startswith(('taskbox.', 'flyteidl', 'google', 'asyncio', 'inspect'))]\n"
        "assert not heavy, heavy\n"
        "taskbox.task\n"
        "assert 'taskbox.authoring.task' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


@taskbox.task
def attempt_seen_from_a_thread() -> int:
    import threading

    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(taskbox.current_context().attempt))
    worker.start()
    worker.join()
    return seen[0]


@taskbox.task
async def raw_prefix_seen_from_async() -> str:
    await asyncio.sleep(0)
    return taskbox.current_context().raw_output_prefix


def test_current_context_inside_tasks(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYTE_ATTEMPT_NUMBER", "2")
    assert attempt_seen_from_a_thread.run() == 2
    assert raw_prefix_seen_from_async.run_with({}, workdir=str(tmp_path)) == str(tmp_path / "raw")
    with pytest.raises(RuntimeError, match="only available while a task runs"):
        taskbox.current_context()


def test_keyword_only_inputs_and_non_functions():
    def f(a: int, *, b: str = "x", c: float) -> str:
        return f"{a}{b}{c}"

    t = taskbox.task(f)
    assert t.inputs == {"a": int, "b": str, "c": float}
    assert t.defaults == {"b": "x"} and t.optional_inputs == frozenset({"b"})

    class Callable:
        def __call__(self, a: int) -> int:
            return a

    for thing in (Callable(), functools.partial(f, 1), print):
        with pytest.raises(ConfigError, match=r"decorates a function \(def or async def\)"):
            taskbox.task(thing)


def test_recoverable_error_is_the_errors_module_class_and_takes_any_message():
    from taskbox.errors import RecoverableUserError

    assert taskbox.RecoverableError is RecoverableUserError
    assert str(taskbox.RecoverableError()) == "recoverable user error"
    assert str(taskbox.RecoverableError(ConnectionError("reset"))) == "reset"
    exc = taskbox.RecoverableError("quota", code="USER:Quota")
    assert (exc.code, exc.origin, exc.recoverable) == ("USER:Quota", "USER", True)
