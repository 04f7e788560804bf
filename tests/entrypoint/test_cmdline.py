"""The container command line, both ways: the args every kind of task builds parse back to the same options.

Each case builds a template the way an author does, then reads its args twice, as the two readers do:
``taskbox run`` (:func:`cmdline.parse_container_args` on the unsubstituted args) and the container
(propeller substitutes the placeholders, then ``taskbox``/``fast-execute``/``execute`` parse them).
"""

from __future__ import annotations

import pytest

import taskbox
from taskbox.authoring.http import HTTPTask
from taskbox.authoring.http_job import HTTPJobTask
from taskbox.authoring.sql import SQLiteTask, SQLTask
from taskbox.entrypoint import cli, cmdline


@taskbox.task
def add(a: int, b: int = 1) -> int:
    return a + b


#: What propeller substitutes for each placeholder.
SUBSTITUTED = {
    "{{.input}}": "s3://bucket/run/inputs.pb",
    "{{.outputPrefix}}": "s3://bucket/run/0",
    "{{.rawOutputDataPrefix}}": "s3://bucket/raw/ab",
    "{{.checkpointOutputPrefix}}": "s3://bucket/run/0/_flytecheckpoints",
    "{{.prevCheckpointPrefix}}": '""',  # first attempt: no previous checkpoint
    "{{.taskTemplatePath}}": "s3://bucket/meta/task.pb",
}
BUNDLE = "s3://bucket/bundles/0123456789abcdef.tar.gz"


def _sqlite():
    return SQLiteTask("demo.items", "SELECT 1 AS x -- a comment\nWHERE 1", uri="/data/db.sqlite", inputs={"n": int})


def _sql():
    return SQLTask("demo.pg", "SELECT 1 AS x", uri="postgresql://reader@db:5432/sales")


def _http():
    return HTTPTask("get_item", "https://api.example.test/items/{{ .inputs.id }}", inputs={"id": str},
                    outputs={"status": int}, status_output="status")  # fmt: skip


def _http_job():
    base = "https://jobs.example.test/jobs"
    return HTTPJobTask("train", submit_url=base, status_url=base + "/{{ .job.id }}", json_body={"epochs": 1},
                       job_fields={"id": "/id"})  # fmt: skip


# name -> (build the container args, expected (resolver, resolver args, bundle, dest dir, checkpoints))
CASES = {
    "sqlite-template-task": (
        lambda: list(_sqlite().to_template().container.args),
        ("taskbox.template", [None, "sqlite"], None, None, False),
    ),
    "sql-template-task": (
        lambda: list(_sql().to_template().container.args),
        ("taskbox.template", [None, "sql"], None, None, False),
    ),
    "http-task": (
        lambda: list(_http().to_template().container.args),
        ("taskbox.template", [None, "http"], None, None, False),
    ),
    "http-job-task": (
        lambda: list(_http_job().to_template().container.args),
        ("taskbox.template", [None, "http-job"], None, None, True),
    ),
    "function-task-in-its-image": (
        lambda: list(add.template(image="img").container.args),
        ("taskbox.function", ["task-module", add.module, "task-name", "add"], None, None, True),
    ),
    "function-task-from-a-bundle": (
        lambda: list(add.template(image="img", bundle=BUNDLE, dest_dir="/root").container.args),
        ("taskbox.function", ["task-module", add.module, "task-name", "add"], BUNDLE, "/root", True),
    ),
    "template-args-without-executor": (
        lambda: cmdline.template_task_args(None),
        ("taskbox.template", [None], None, None, False),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_taskbox_run_reads_back_what_was_built(name):
    build, (resolver, resolver_args, bundle, dest_dir, _) = CASES[name]
    command = cmdline.parse_container_args(build())
    assert command is not None
    assert (command.resolver, command.resolver_args, command.distribution, command.dest_dir) == (
        resolver, resolver_args, bundle, dest_dir,
    )  # fmt: skip
    executor = resolver_args[1] if resolver == "taskbox.template" and len(resolver_args) > 1 else ""
    assert command.executor == executor


def _as_the_container_parses(args: list[str]) -> tuple[cmdline.FastExecuteArgs | None, cmdline.ExecuteOptions]:
    """Substitute the placeholders as propeller does, then parse as ``taskbox`` (cli.main) does."""
    argv = [SUBSTITUTED.get(a, a) for a in args]
    assert argv[0] == "taskbox"
    fast = None
    if argv[1] == "fast-execute":
        fast = cmdline.parse_fast_execute(argv[2:])
        assert fast is not None
        execute_argv = fast.execute_argv
    else:
        assert argv[1] == "execute"
        execute_argv = argv[2:]
    options, _ = cmdline.split_resolver_args(execute_argv)
    assert cmdline.fast_parse(options) is not None, "Flyte's own flag list must take the fast path"
    assert vars(cmdline.fast_parse(options)) == vars(cli._execute_parser().parse_args(options)) | {"resolver_args": []}
    opts = cmdline.execute_options(execute_argv, environ={})
    assert opts is not None
    return fast, opts


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_container_parses_back_the_same_options(name):
    build, (resolver, resolver_args, bundle, dest_dir, checkpoints) = CASES[name]
    fast, opts = _as_the_container_parses(build())
    assert (opts.inputs, opts.output_prefix, opts.raw_output_prefix) == (
        SUBSTITUTED["{{.input}}"], SUBSTITUTED["{{.outputPrefix}}"], SUBSTITUTED["{{.rawOutputDataPrefix}}"],
    )  # fmt: skip
    assert opts.checkpoint_path == (SUBSTITUTED["{{.checkpointOutputPrefix}}"] if checkpoints else None)
    assert opts.prev_checkpoint is None  # '""' means absent
    assert opts.resolver == resolver
    path = SUBSTITUTED["{{.taskTemplatePath}}"]
    assert opts.resolver_args == [path if a is None else a for a in resolver_args]
    assert opts.fail_on_error is False
    got = (fast.distribution, fast.dest_dir) if fast is not None else (None, None)
    assert got == (bundle, dest_dir)


def test_every_builder_puts_placeholders_only():
    """No value leaks into the args: each is a flag, a placeholder, a resolver name or a code location."""
    for name, (build, (resolver, resolver_args, bundle, dest_dir, _)) in CASES.items():
        allowed = {resolver, bundle, dest_dir, *(a for a in resolver_args if a)} | set(SUBSTITUTED)
        for arg in build():
            assert arg.startswith("-") or arg in allowed or arg in ("taskbox", "execute", "fast-execute"), (name, arg)


def test_fail_on_error_comes_from_the_environment_given():
    args = [SUBSTITUTED.get(a, a) for a in cmdline.template_task_args("echo")][2:]
    assert cmdline.execute_options(args, environ={"FLYTE_FAIL_ON_ERROR": "true"}).fail_on_error is True
    assert cmdline.execute_options(args, environ={}).fail_on_error is False


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["taskbox", "fast-execute", "--help", "--", "taskbox", "execute", "--resolver", "r"], cmdline.HelpRequested),
        (
            ["taskbox", "fast-execute", "--bogus", "x", "--", "taskbox", "execute", "--resolver", "r"],
            cmdline.UsageError,
        ),
    ],
)
def test_malformed_fast_execute_args_are_usage_errors(args, error):
    with pytest.raises(error):
        cmdline.parse_container_args(args)


@pytest.mark.parametrize(
    "args", [[], ["python", "main.py"], ["taskbox", "execute", "--inputs", "x"], ["taskbox", "execute", "--resolver"]]
)
def test_args_that_name_no_resolver_are_not_taskbox_commands(args):
    assert cmdline.parse_container_args(args) is None
