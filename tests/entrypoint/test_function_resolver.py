"""The ``taskbox.function`` resolver through the real ``taskbox execute`` CLI (subprocesses).

User code comes from ``tests/sample_project`` (or a throwaway module in ``tmp_path``) on ``PYTHONPATH``;
storage is local or the loopback S3 server.
"""

from __future__ import annotations

import pytest
from flyteidl.core import errors_pb2, execution_pb2

from helpers import commit_files, put, read_error
from taskbox import storage
from taskbox.entrypoint.function import find_task, load_function_task, parse_args
from taskbox.errors import TaskLoadError, TemplateError
from taskhelpers import (
    SAMPLE_MODULE,
    container_command,
    encode,
    function_args,
    read_outputs_by_hints,
    run_with_path,
    sample_tasks,
    write_module,
)

USER = execution_pb2.ExecutionError.USER
RECOVERABLE, NON_RECOVERABLE = errors_pb2.ContainerError.RECOVERABLE, errors_pb2.ContainerError.NON_RECOVERABLE

tasks = sample_tasks()


@pytest.fixture(params=["local", "s3", "azure"])
def base(request: pytest.FixtureRequest, tmp_path, unique_prefix: str) -> str:
    """A fresh location on local storage, the loopback S3 server or Azurite."""
    if request.param == "local":
        return str(tmp_path / "store" / unique_prefix)
    return request.getfixturevalue(f"{request.param}_server").uri(unique_prefix)


def _run_sample(base: str, task, values: dict, *extra: str):
    """Run a sample task with the exact container args of its template; return (process, prefix)."""
    inputs = put(storage.join(base, "inputs.pb"), encode(values, task.inputs, storage.join(base, "raw-in")))
    prefix = storage.join(base, "out", "0")
    command = container_command(
        task, input=inputs, outputPrefix=prefix, rawOutputDataPrefix=storage.join(base, "raw"), **dict(extra)
    )
    return run_with_path(command), prefix


# ---------------------------------------------------------------- successful runs


def test_sync_function_with_default_input(base, tmp_path):
    proc, prefix = _run_sample(base, tasks.add, {"a": 40})
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"outputs.pb"}
    assert read_outputs_by_hints(prefix, tasks.add.outputs, str(tmp_path)) == {"o0": 41}


def test_async_function(base, tmp_path):
    proc, prefix = _run_sample(base, tasks.greet, {"name": "taskbox", "delay_s": 0.01})
    assert proc.returncode == 0, proc.stderr
    assert read_outputs_by_hints(prefix, tasks.greet.outputs, str(tmp_path)) == {"o0": "hello, taskbox"}


def test_dataclass_input_and_file_output(base, tmp_path):
    order = tasks.Order(item="pen", quantity=3, unit_price=1.5)
    proc, prefix = _run_sample(base, tasks.write_invoice, {"order": order, "currency": "CHF"})
    assert proc.returncode == 0, proc.stderr
    invoice = read_outputs_by_hints(prefix, tasks.write_invoice.outputs, str(tmp_path))["o0"]
    assert invoice.uri.startswith(storage.join(base, "raw"))  # uploaded under the raw-output prefix
    with open(invoice.download(str(tmp_path / "invoice.txt")), encoding="utf-8") as fh:
        assert fh.read() == "3 x pen = 4.50 CHF\n"


def test_named_tuple_outputs(tmp_path):
    proc, prefix = _run_sample(
        str(tmp_path), tasks.resumable_sum, {"n": 5}, ("checkpointOutputPrefix", str(tmp_path / "cp"))
    )
    assert proc.returncode == 0, proc.stderr
    assert read_outputs_by_hints(prefix, tasks.resumable_sum.outputs, str(tmp_path)) == {"total": 10, "resumed_from": 0}


# ---------------------------------------------------------------- user errors


def test_raising_function_is_a_non_recoverable_user_error_with_the_users_traceback(base):
    proc, prefix = _run_sample(base, tasks.fail, {"message": "bad input 42"})
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"error.pb"}
    err = read_error(prefix)
    assert (err.code, err.origin, err.kind) == ("USER:ValueError", USER, NON_RECOVERABLE)
    assert "raised ValueError: bad input 42" in err.message
    assert 'tasks.py", line' in err.message and "raise ValueError(message)" in err.message
    assert "in fail" in err.message


def test_recoverable_error_is_recoverable(base):
    proc, prefix = _run_sample(base, tasks.flaky, {"message": "try again later"})
    assert proc.returncode == 0, proc.stderr
    err = read_error(prefix)
    assert (err.code, err.origin, err.kind) == ("USER:Recoverable", USER, RECOVERABLE)
    assert "try again later" in err.message
    assert "ConnectionError: upstream reset the connection" in err.message  # the cause is kept


def test_fail_on_error_turns_the_user_error_into_exit_1(tmp_path):
    proc, prefix = _run_sample(str(tmp_path), tasks.fail, {"message": "x"})
    command = function_args(
        str(tmp_path / "inputs.pb"), str(tmp_path / "out2"), SAMPLE_MODULE, "fail", "--fail-on-error"
    )
    proc = run_with_path(command)
    assert proc.returncode == 1
    assert read_error(str(tmp_path / "out2")).code == "USER:ValueError"


BAD_OUTPUTS = """
from typing import NamedTuple
import taskbox

class Pair(NamedTuple):
    left: int
    right: str

@taskbox.task
def wrong_type() -> int:
    return "not a number"

@taskbox.task
def wrong_arity() -> Pair:
    return (1, "a", "extra")

@taskbox.task
def not_a_tuple() -> Pair:
    return 7

@taskbox.task
def second_output_wrong() -> Pair:
    return Pair(1, 2.5)

@taskbox.task
def declares_nothing():
    return 3
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wrong_type", "output 'o0'"),
        ("wrong_arity", "declares 2 outputs (left, right) but returned a tuple of 3"),
        ("not_a_tuple", "declares outputs left, right (a tuple of 2) but returned int"),
        ("second_output_wrong", "output 'right'"),
        ("declares_nothing", "declares no outputs but returned int"),
    ],
)
def test_output_conversion_failures_name_the_output(tmp_path, name, expected):
    write_module(tmp_path, "bad_outputs", BAD_OUTPUTS)
    put(str(tmp_path / "inputs.pb"), b"")
    proc = run_with_path(
        function_args(str(tmp_path / "inputs.pb"), str(tmp_path / "out"), "bad_outputs", name), tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    err = read_error(str(tmp_path / "out"))
    assert (err.code, err.origin, err.kind) == ("USER:InvalidOutput", USER, NON_RECOVERABLE)
    assert expected in err.message
    assert commit_files(str(tmp_path / "out")) == {"error.pb"}


def test_missing_required_input_is_an_input_error(tmp_path):
    put(str(tmp_path / "inputs.pb"), b"")
    proc = run_with_path(function_args(str(tmp_path / "inputs.pb"), str(tmp_path / "out"), SAMPLE_MODULE, "add"))
    assert proc.returncode == 0, proc.stderr
    err = read_error(str(tmp_path / "out"))
    assert err.code == "USER:InvalidInput" and "input 'a'" in err.message


# ---------------------------------------------------------------- loading user code


LOAD_CASES = {
    "module_missing": ("no_such_module_xyz", "f", {}, "module 'no_such_module_xyz' not found"),
    "syntax_error": ("broken_syntax", "f", {"broken_syntax": "def f(:\n    pass\n"}, "has a syntax error at"),
    "import_raises": (
        "raises_at_import",
        "f",
        {"raises_at_import": "import os\nos.environ['NOPE_XYZ']\n"},
        "importing module 'raises_at_import' raised KeyError: 'NOPE_XYZ'",
    ),
    "dependency_missing": (
        "needs_dep",
        "f",
        {"needs_dep": "import not_installed_dep_xyz\n"},
        "importing module 'needs_dep' failed: No module named 'not_installed_dep_xyz'",
    ),
    "name_missing": (
        "plain_mod",
        "nope",
        {"plain_mod": "def f(x: int) -> int:\n    return x\n"},
        "has no attribute 'nope'",
    ),
    "plain_function": (
        "plain_mod",
        "f",
        {"plain_mod": "def f(x: int) -> int:\n    return x\n"},
        "decorate it with @taskbox.task",
    ),
    "not_callable": ("value_mod", "f", {"value_mod": "f = 3\n"}, "it is a int, not a @taskbox.task function"),
}


@pytest.mark.parametrize("case", list(LOAD_CASES))
def test_load_failures_are_clear_user_errors(tmp_path, case):
    module, name, sources, expected = LOAD_CASES[case]
    for mod, source in sources.items():
        write_module(tmp_path, mod, source)
    put(str(tmp_path / "inputs.pb"), b"")
    proc = run_with_path(function_args(str(tmp_path / "inputs.pb"), str(tmp_path / "out"), module, name), tmp_path)
    assert proc.returncode == 0, proc.stderr
    err = read_error(str(tmp_path / "out"))
    assert (err.code, err.origin, err.kind) == ("USER:TaskLoadError", USER, NON_RECOVERABLE)
    assert expected in err.message
    assert f"{module}.{name}" in err.message


def test_import_time_exception_keeps_the_users_traceback(tmp_path):
    write_module(tmp_path, "raises_at_import", "def helper():\n    raise RuntimeError('config missing')\n\nhelper()\n")
    put(str(tmp_path / "inputs.pb"), b"")
    run_with_path(function_args(str(tmp_path / "inputs.pb"), str(tmp_path / "out"), "raises_at_import", "f"), tmp_path)
    message = read_error(str(tmp_path / "out")).message
    assert 'raises_at_import.py", line 2, in helper' in message
    assert "RuntimeError: config missing" in message


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["task-module", "m"],
        ["task-module", "m", "task-name", ""],
        ["module", "m", "name", "n"],
        ["a", "b", "c", "d", "e"],
    ],
)
def test_malformed_resolver_args(args):
    with pytest.raises(TemplateError, match="task-module MODULE task-name NAME"):
        parse_args(args)


def test_args_pairs_in_any_order():
    assert parse_args(["task-name", "n", "task-module", "m"]) == ("m", "n")


def test_load_function_task_in_process():
    loaded = load_function_task(["task-module", SAMPLE_MODULE, "task-name", "add"], "/tmp")
    assert loaded.name == "sample_tasks.tasks.add"
    assert loaded.input_types == {"a": int, "b": int}
    assert loaded.output_types == {"o0": int}
    assert loaded.optional_inputs == frozenset({"b"})
    assert find_task(SAMPLE_MODULE, "greet") is tasks.greet
    with pytest.raises(TaskLoadError, match="not a task"):
        find_task(SAMPLE_MODULE, "Order")
