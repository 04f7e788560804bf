"""The ``flyte-connector`` executor: a flyte-sdk ``AsyncConnector`` (``tests/flyte2/batch_connector``) run in the pod.

The connector is real flyte-sdk code (written as the SDK's docs show) talking to the job service of
``tests/http/jobserver.py`` on 127.0.0.1. taskbox runs it as a container would, with the SDK installed:
``.venv-flyte2/bin/taskbox execute`` (Flyte v1, template file) and ``taskbox a0`` (Flyte 2, template in the
args). The restart, SIGTERM and timeout cases read the job service's record of what was created and deleted.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest
from flyteidl.core import errors_pb2, execution_pb2, types_pb2
from sdk import HERE, PYTHON, TASKBOX_WITH_SDK, fill, require_sdk, run_a0

from helpers import (
    ROOT,
    TASKBOX,
    commit_files,
    encode_inputs,
    execute_args,
    make_template,
    put,
    read_error,
    read_outputs,
    simple,
    subprocess_env,
)
from taskbox import storage
from taskbox.checkpoints import DATA_FILE
from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, a0_args, encode_template
from taskbox.errors import ConfigError
from taskbox.executors import registry, validate_config
from taskbox.executors.connector import ConnectorExecutor, phase_of

pytestmark = pytest.mark.timeout(120)

INT, STR = simple("INTEGER"), simple("STRING")
FILE = types_pb2.LiteralType(blob=types_pb2.BlobType(format="", dimensionality=types_pb2.BlobType.SINGLE))
FAST = {"poll_interval_seconds": 0.05, "max_poll_interval_seconds": 0.2}
TOKEN = "s3cr3t-connector-token"
SECRET_ENV = {"_FSEC_JOBS_TOKEN": TOKEN}
BY_PATH = {"connector": "batch_connector.connector:BatchJobConnector"}


def _jobserver():
    """``tests/http/jobserver.py`` (a module of its own folder, which is not on this folder's path)."""
    module = sys.modules.get("jobserver")
    if module is None:
        spec = importlib.util.spec_from_file_location("jobserver", ROOT / "tests" / "http" / "jobserver.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["jobserver"] = module
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def _sdk_with_connector_api():
    """Fail (never skip) when the SDK environment lacks flyte's connector API (``flyte[connector]``)."""
    require_sdk()
    proc = subprocess.run([str(PYTHON), "-c", "import flyte.connectors"], capture_output=True, text=True)
    if proc.returncode:
        pytest.fail(f"flyte.connectors does not import in {PYTHON}: install 'flyte[connector]' there\n{proc.stderr}")


@pytest.fixture
def jobs():
    with _jobserver().running() as srv:
        yield srv


def custom(srv, job, route=BY_PATH, **extra):
    """The executor's config: the connector, its task config (the service and the job's spec), the loop."""
    return {
        **route,
        "task_config": {"server": srv.base, "job": job},
        "secrets": {"api_token": {"group": "jobs", "key": "token"}},
        **FAST,
        **extra,
    }


def record(checkpoint):
    return json.loads(storage.read_bytes(storage.join(checkpoint, DATA_FILE)))


def meta_of(checkpoint):
    return json.loads(base64.b64decode(record(checkpoint)["handle"]["resource_meta"]))


class Execute:
    """``taskbox execute`` (Flyte v1's container contract) of a connector template, with the SDK installed."""

    def __init__(self, tmp_path, config, *, inputs=None, outputs=None, values=None, task_type="batch_job"):
        self.tmp = tmp_path
        self.outputs = outputs or {}
        tpl = make_template(task_type, inputs or {}, self.outputs, config)
        self.template = put(str(tmp_path / "task.pb"), tpl.SerializeToString())
        data = encode_inputs(values or {}, inputs or {}, raw=str(tmp_path / "raw-in"))
        self.inputs = put(str(tmp_path / "inputs.pb"), data)
        self.prefix = str(tmp_path / "out")

    def start(self, checkpoint, prev=None, executable=TASKBOX_WITH_SDK, **env):
        extra = ["--checkpoint-path", checkpoint] + (["--prev-checkpoint", prev] if prev else [])
        args = execute_args(self.inputs, self.prefix, self.template, "flyte-connector", *extra)
        args[0] = str(executable)
        full_env = subprocess_env(**SECRET_ENV, **env)
        full_env["PYTHONPATH"] = os.pathsep.join([HERE, full_env["PYTHONPATH"]])
        pipe = subprocess.PIPE
        return subprocess.Popen(args, env=full_env, stdout=pipe, stderr=pipe, text=True)


def finish(proc, timeout=90):
    _out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def assert_error(prefix, code, recoverable, origin):
    error = read_error(prefix)
    kind = errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    origin_enum = execution_pb2.ExecutionError.USER if origin == "USER" else execution_pb2.ExecutionError.SYSTEM
    assert (error.code, error.kind, error.origin) == (code, kind, origin_enum), error
    return error


# ------------------------------------------------------------------------------- a job that succeeds


def test_execute_runs_the_connector_to_its_outputs(tmp_path, jobs):
    report = tmp_path / "report.txt"
    report.write_text("42 rows\n")
    source = tmp_path / "source.csv"
    source.write_text("a,b\n")
    from taskbox.literals import File

    run = Execute(
        tmp_path,
        custom(jobs, {"polls": 2, "result": {"rows": 7, "table": "t_2026", "report_file": str(report)}}),
        inputs={"n": INT, "day": STR, "source": FILE},
        values={"n": 3, "day": "2026-11-22", "source": File(str(source))},
        outputs={"rows": INT, "table": STR, "report_file": FILE},
    )
    checkpoint = str(tmp_path / "cp")
    code, err = finish(run.start(checkpoint))
    assert code == 0, err
    assert commit_files(run.prefix) == {"outputs.pb"}, err
    out = read_outputs(run.prefix, run.outputs)
    assert (out["rows"], out["table"]) == (7, "t_2026")
    assert open(out["report_file"]).read() == "42 rows\n"  # a local flyte File: uploaded by taskbox
    assert out["report_file"].uri != str(report)
    # What the connector received: flyte's native values, the connector's template, the secret as a keyword.
    (submission,) = jobs.submissions
    body = submission["body"]
    assert body["inputs"]["n"] == {"type": "builtins.int", "value": 3}
    assert body["inputs"]["day"] == {"type": "builtins.str", "value": "2026-11-22"}
    assert body["inputs"]["source"]["type"] == "flyte.io._file.File"
    assert body["inputs"]["source"]["value"].startswith(str(tmp_path / "raw-in"))
    assert (body["task_type"], body["container_args"], body["attempt"]) == ("batch_job", [], 0)
    assert submission["headers"]["Authorization"] == f"Bearer {TOKEN}"
    # The durable handle: the connector's ResourceMeta, no secret.
    assert record(checkpoint)["state"] == "succeeded"
    assert record(checkpoint)["handle"]["task_type"] == "batch_job"
    assert meta_of(checkpoint) == {"job_id": "job-1", "server": jobs.base, "output_prefix": ""}
    assert TOKEN not in storage.read_bytes(storage.join(checkpoint, DATA_FILE)).decode()
    # A rerun into the same checkpoint re-reads the finished job: no second create.
    code, err = finish(run.start(checkpoint))
    assert code == 0, err
    assert read_outputs(run.prefix, run.outputs)["rows"] == 7 and len(jobs.submissions) == 1


def test_outputs_the_connector_wrote_to_its_output_prefix(tmp_path, jobs):
    outputs = {"rows": INT, "table": STR}
    config = custom(jobs, {"polls": 1, "result": {"rows": 5, "table": "t"}})
    config["task_config"]["write_outputs"] = True  # the connector writes outputs.pb instead of returning them
    run = Execute(tmp_path, config, outputs=outputs)
    checkpoint = str(tmp_path / "cp")
    code, err = finish(run.start(checkpoint))
    assert code == 0, err
    assert read_outputs(run.prefix, outputs) == {"rows": 5, "table": "t"}
    written = meta_of(checkpoint)["output_prefix"]  # under the raw output prefix, recorded in the handle
    assert written == record(checkpoint)["handle"]["output_prefix"]
    assert storage.exists(storage.join(written, "outputs.pb"))
    assert jobs.submissions[0]["body"]["output_prefix"] == written


def _entry_point_site(tmp_path):
    """A ``.dist-info`` declaring the connector's ``flyte.connectors`` entry point, as ``pip install`` would."""
    site = tmp_path / "site"
    info = site / "batch_connector-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: batch-connector\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[flyte.connectors]\nbatch_job = batch_connector.connector\n")
    return str(site)


def a0_command(tmp_path, config, outputs, *, task_type="batch_job"):
    tpl = make_template(task_type, {}, outputs, config)
    args = a0_args(
        PREBUILT_RESOLVER,
        ["template", encode_template(tpl.SerializeToString()), "executor", "flyte-connector"],
        version="v1",
    )
    put(str(tmp_path / "inputs.pb"), encode_inputs({}, {}))
    args = fill(args, str(tmp_path / "inputs.pb"), str(tmp_path / "out"), str(tmp_path / "raw"))
    places = {"{{.checkpointOutputPrefix}}": str(tmp_path / "cp"), "{{.prevCheckpointPrefix}}": ""}
    return [places.get(arg, arg) for arg in args]


def test_a0_finds_the_connector_by_task_type_through_its_entry_point(tmp_path, jobs):
    outputs = {"rows": INT}
    config = custom(jobs, {"polls": 1, "result": {"rows": 11}}, route={})  # the template's type names it
    args = a0_command(tmp_path, config, outputs)
    proc = run_a0(TASKBOX_WITH_SDK, args, cwd=str(tmp_path), PYTHONPATH=_entry_point_site(tmp_path), **SECRET_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert commit_files(str(tmp_path / "out")) == {"outputs.pb"}, proc.stderr[-3000:]
    assert read_outputs(str(tmp_path / "out"), outputs) == {"rows": 11}
    assert record(str(tmp_path / "cp"))["state"] == "succeeded" and len(jobs.submissions) == 1


def test_a0_reports_a_failed_job_as_a_v2_user_error(tmp_path, jobs):
    config = custom(jobs, {"polls": 1, "outcome": "failed", "message": "quota exceeded"})
    proc = run_a0(TASKBOX_WITH_SDK, a0_command(tmp_path, config, {}), cwd=str(tmp_path), **SECRET_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    error = assert_error(str(tmp_path / "out"), "JobFailed", False, "USER")  # v2: the origin is a field
    assert "quota exceeded" in error.message and "console:" in error.message


# ---------------------------------------------------------------------------------- a job that fails


@pytest.mark.parametrize(
    ("outcome", "code", "recoverable", "origin"),
    [("failed", "USER:JobFailed", False, "USER"), ("internal_error", "SYSTEM:JobFailed", True, "SYSTEM")],
)
def test_failed_job_gives_an_error_document(tmp_path, jobs, outcome, code, recoverable, origin):
    # Found by task type after importing 'modules' (the template's own type is the executor's).
    route = {"task_type": "batch_job", "modules": ["batch_connector.connector"]}
    job = {"polls": 1, "outcome": outcome, "message": "quota exceeded for project x"}
    run = Execute(tmp_path, custom(jobs, job, route=route), task_type="flyte-connector")
    code_, err = finish(run.start(str(tmp_path / "cp")))
    assert code_ == 0, err
    error = assert_error(run.prefix, code, recoverable, origin)
    assert "quota exceeded for project x" in error.message
    assert record(str(tmp_path / "cp"))["state"] == "failed" and jobs.cancels == []


# ------------------------------------------------------------------------------ restarts and stops


def test_sigkill_after_create_then_rerun_resumes_the_same_job(tmp_path, jobs):
    outputs = {"rows": INT}
    run = Execute(tmp_path, custom(jobs, {"result": {"rows": 9}}), outputs=outputs)
    checkpoint = str(tmp_path / "cp")
    proc = run.start(checkpoint)
    jobs.wait_for(lambda: storage.exists(storage.join(checkpoint, DATA_FILE)) and jobs.polls["job-1"] >= 1)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert jobs.state("job-1") == "running" and record(checkpoint)["state"] == "active"
    rerun = run.start(checkpoint)
    polls = jobs.polls["job-1"]
    jobs.wait_for(lambda: jobs.polls["job-1"] > polls)  # the restarted run polls the recorded job
    jobs.finish("job-1")
    code, err = finish(rerun)
    assert code == 0, err
    assert read_outputs(run.prefix, outputs) == {"rows": 9}
    assert len(jobs.submissions) == 1 and jobs.cancels == []  # no second create, nothing deleted
    assert "resuming the job" in err


def test_next_attempt_resumes_from_the_previous_checkpoint(tmp_path, jobs):
    outputs = {"rows": INT}
    run = Execute(tmp_path, custom(jobs, {"result": {"rows": 1}}), outputs=outputs)
    first, second = str(tmp_path / "attempt0"), str(tmp_path / "attempt1")
    proc = run.start(first)
    jobs.wait_for(lambda: jobs.polls["job-1"] >= 1)
    proc.kill()
    proc.communicate(timeout=30)
    proc = run.start(second, prev=first, FLYTE_ATTEMPT_NUMBER="1")
    jobs.wait_for(lambda: storage.exists(storage.join(second, DATA_FILE)))
    jobs.finish("job-1")
    code, err = finish(proc)
    assert code == 0, err
    assert read_outputs(run.prefix, outputs) == {"rows": 1} and len(jobs.submissions) == 1
    assert record(second)["state"] == "succeeded" and record(second)["attempt"] == 1


def test_sigterm_deletes_the_job_and_commits_terminated(tmp_path, jobs):
    run = Execute(tmp_path, custom(jobs, {}))
    checkpoint = str(tmp_path / "cp")
    proc = run.start(checkpoint, TASKBOX_TERM_GRACE_S="10")
    jobs.wait_for(lambda: jobs.polls["job-1"] >= 1)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 143, err
    assert jobs.cancels == ["job-1"] and jobs.state("job-1") == "cancelled"
    assert jobs.seen[-1][2].get("Authorization") == f"Bearer {TOKEN}"  # delete got the connection secret too
    assert_error(run.prefix, "SYSTEM:Terminated", True, "SYSTEM")
    assert commit_files(run.prefix) == {"error.pb"}
    assert record(checkpoint)["state"] == "cancelled"


def test_sigterm_while_create_runs_deletes_the_job_it_returns(tmp_path, jobs):
    run = Execute(tmp_path, custom(jobs, {}))
    jobs.hold.set()  # the service has the job but has not answered create yet
    proc = run.start(str(tmp_path / "cp"), TASKBOX_TERM_GRACE_S="10")
    jobs.wait_for(lambda: len(jobs.submissions) == 1)
    proc.send_signal(signal.SIGTERM)
    jobs.release.set()
    code, err = finish(proc)
    assert code == 143, err
    assert jobs.cancels == ["job-1"] and jobs.state("job-1") == "cancelled"
    assert_error(run.prefix, "SYSTEM:Terminated", True, "SYSTEM")


def test_timeout_deletes_the_job(tmp_path, jobs):
    run = Execute(tmp_path, custom(jobs, {}, timeout_seconds=1.5))
    code, err = finish(run.start(str(tmp_path / "cp")))
    assert code == 0, err
    assert jobs.cancels == ["job-1"] and jobs.state("job-1") == "cancelled"
    error = assert_error(run.prefix, "SYSTEM:JobTimeout", True, "SYSTEM")
    assert "timeout_seconds=1.5" in error.message


# ---------------------------------------------------------------------------- configuration errors


def test_without_the_sdk_the_error_names_taskbox_flyte2(tmp_path, jobs):
    run = Execute(tmp_path, custom(jobs, {"polls": 1}))
    code, err = finish(run.start(str(tmp_path / "cp"), executable=TASKBOX))  # .venv: no flyte SDK
    assert code == 0, err
    error = assert_error(run.prefix, "USER:ExecutorNotInstalled", False, "USER")  # its `requires`
    assert "taskbox[flyte2]" in error.message and jobs.submissions == []


def test_an_unknown_task_type_is_a_user_error_naming_the_registered_ones(tmp_path, jobs):
    route = {"task_type": "no_such_job", "modules": ["batch_connector.connector"]}
    run = Execute(tmp_path, custom(jobs, {}, route=route))
    code, err = finish(run.start(str(tmp_path / "cp")))
    assert code == 0, err
    error = assert_error(run.prefix, "USER:ConnectorNotFound", False, "USER")
    assert "no_such_job" in error.message and "batch_job (version 0)" in error.message


def test_a_missing_connector_module_is_a_user_error(tmp_path, jobs):
    run = Execute(tmp_path, custom(jobs, {}, route={"connector": "no_such_pkg.connector:Nope"}))
    code, err = finish(run.start(str(tmp_path / "cp")))
    assert code == 0, err
    error = assert_error(run.prefix, "USER:ConnectorNotFound", False, "USER")
    assert "no_such_pkg" in error.message


def test_an_exception_in_create_is_a_retried_user_error(tmp_path, jobs):
    config = custom(jobs, {})
    del config["task_config"]["server"]  # the connector's create raises KeyError
    run = Execute(tmp_path, config)
    code, err = finish(run.start(str(tmp_path / "cp")))
    assert code == 0, err
    error = assert_error(run.prefix, "USER:ConnectorError", True, "USER")
    assert "create failed: KeyError" in error.message and jobs.submissions == []


def test_a_failing_get_is_tolerated_then_a_retried_system_error(tmp_path, jobs):
    run = Execute(tmp_path, custom(jobs, {}, max_poll_failures=3))
    proc = run.start(str(tmp_path / "cp"))
    jobs.wait_for(lambda: jobs.polls["job-1"] >= 1)
    jobs.forget("job-1")  # the service answers 404 from now on
    code, err = finish(proc)
    assert code == 0, err
    error = assert_error(run.prefix, "SYSTEM:ConnectorUnavailable", True, "SYSTEM")
    assert "get failed: HTTPStatusError" in error.message
    assert err.count("polling the job failed") == 2  # tolerated max_poll_failures - 1 times


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"connector": "not a path"}, "import path"),
        ({"modules": ["bad module"]}, "not a module name"),
        ({"connection": {"inputs": "x"}}, "cannot be a connection keyword"),
        ({"secrets": {"k": {"group": "g"}}, "connection": {"k": "v"}}, "both a secret and a connection"),
        ({"call_timeout_seconds": 0}, "call_timeout_seconds"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_config_validation(change, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(ConnectorExecutor, {"connector": "pkg.mod:C", **change})


def test_config_from_a_struct_and_the_registry_entry_need_no_sdk():
    config = validate_config(ConnectorExecutor, {"version": 1.0, "task_type_version": 2.0, "task_config": {"a": 1.0}})
    assert (config.version, config.task_type_version, config.task_config) == (1, 2, {"a": 1.0})
    assert registry.load("flyte-connector") is ConnectorExecutor  # in .venv, which has no flyte
    assert "flyte" not in sys.modules


def test_phases_map_onto_the_loops():
    from taskbox.executors.connector import ConnectorInvalid

    assert [phase_of(v).value for v in range(9)] == [
        "QUEUED", "QUEUED", "RUNNING", "SUCCEEDED", "ABORTED", "FAILED", "QUEUED", "QUEUED", "RETRYABLE_FAILURE",
    ]  # fmt: skip
    for bad in (9, -1, "SUCCEEDED", None, True):
        with pytest.raises(ConnectorInvalid):
            phase_of(bad)
