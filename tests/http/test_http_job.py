"""The ``http-job`` executor against a job service on 127.0.0.1: in-process runs and real ``taskbox execute``
subprocesses (SIGTERM, SIGKILL and rerun, the next attempt with ``--prev-checkpoint``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid

import jobserver
import pytest
from flyteidl.core import errors_pb2, execution_pb2

from helpers import encode_inputs, execute_args, make_template, put, read_error, read_outputs, simple, subprocess_env
from taskbox import storage
from taskbox.authoring import TaskFailed, run_template
from taskbox.checkpoints import DATA_FILE
from taskbox.errors import ConfigError
from taskbox.executors import validate_config
from taskbox.executors.http_job import HTTPJobExecutor

STR, INT = simple("STRING"), simple("INTEGER")
pytestmark = pytest.mark.timeout(90)

FAST = {"poll_interval_seconds": 0.05, "max_poll_interval_seconds": 0.2}


@pytest.fixture
def jobs():
    with jobserver.running() as srv:
        yield srv


def job_custom(srv, spec, **extra):
    custom = {
        "submit": {"url": srv.base + "/jobs", "json_body": spec},
        "job_fields": {"id": "/job/id"},
        "status_url": srv.base + "/jobs/{{ .job.id }}",
        "cancel_url": srv.base + "/jobs/{{ .job.id }}",
        "message_pointer": "/message",
        "log_links": {"console": "/console"},
        **FAST,
    }
    custom.update(extra)
    return custom


def run_job(tmp_path, custom, inputs=None, outputs=None, values=None):
    tpl = make_template("http-job", inputs or {}, outputs or {}, custom)
    return run_template(tpl, values or {}, workdir=str(tmp_path / f"run-{uuid.uuid4().hex[:8]}"))


# ----------------------------------------------------------------------------------- in-process


def test_job_runs_to_success_with_outputs_from_the_status(tmp_path, jobs):
    spec = {"polls": 2, "result": {"rows": 7, "table": "t_{{ .inputs.day }}"}, "day": "{{ .inputs.day }}"}
    out = run_job(
        tmp_path,
        job_custom(jobs, spec, outputs={"rows": "/result/rows", "table": "/result/table"}),
        {"day": STR},
        {"rows": INT, "table": STR},
        {"day": "2026-11-22"},
    )
    assert out == {"rows": 7, "table": "t_2026-11-22"}
    assert len(jobs.submissions) == 1 and jobs.submissions[0]["body"]["day"] == "2026-11-22"
    assert jobs.polls["job-1"] == 3 and jobs.cancels == []


def test_outputs_from_a_result_url(tmp_path, jobs):
    custom = job_custom(
        jobs,
        {"polls": 0, "result": [1, 2, 3]},
        result_url=jobs.base + "/jobs/{{ .job.id }}/result",
        outputs={"n": "/result/2"},
    )
    assert run_job(tmp_path, custom, outputs={"n": INT}) == {"n": 3}


def test_failed_job_is_a_user_error_with_the_service_message(tmp_path, jobs):
    custom = job_custom(jobs, {"polls": 1, "outcome": "failed", "message": "table t_x does not exist"})
    with pytest.raises(TaskFailed) as info:
        run_job(tmp_path, custom)
    err = info.value
    assert (err.code, err.origin, err.recoverable) == ("USER:JobFailed", "USER", False)
    assert "table t_x does not exist" in err.message and "/console/job-1" in err.message
    assert jobs.cancels == []  # a finished job is not cancelled


def test_state_mapping_and_retryable_failure(tmp_path, jobs):
    custom = job_custom(
        jobs, {"polls": 0, "outcome": "BOOM", "message": "node lost"}, states={"boom": "RETRYABLE_FAILURE"}
    )
    with pytest.raises(TaskFailed) as info:
        run_job(tmp_path, custom)
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("SYSTEM:JobFailed", "SYSTEM", True)


def test_unmapped_state_fails_and_cancels_the_job(tmp_path, jobs):
    custom = job_custom(jobs, {"polls": 0, "outcome": "weird"})
    with pytest.raises(TaskFailed) as info:
        run_job(tmp_path, custom)
    assert info.value.code == "USER:ResponseShape" and "'weird'" in info.value.message
    assert jobs.cancels == ["job-1"]


def test_timeout_cancels_the_job_and_is_recoverable(tmp_path, jobs):
    custom = job_custom(jobs, {}, timeout_seconds=0.4)
    with pytest.raises(TaskFailed) as info:
        run_job(tmp_path, custom)
    assert (info.value.code, info.value.recoverable) == ("SYSTEM:JobTimeout", True)
    assert jobs.state("job-1") == "cancelled" and jobs.cancels == ["job-1"]


def test_submit_rejected_is_a_user_error_and_nothing_is_polled(tmp_path, jobs):
    custom = job_custom(jobs, {})
    custom["submit"] = {"url": jobs.base + "/nowhere", "json_body": {}}
    with pytest.raises(TaskFailed) as info:
        run_job(tmp_path, custom)
    assert info.value.code == "USER:HTTPStatus"
    assert jobs.polls == {} and jobs.cancels == []


def test_ssrf_guard_applies_to_the_status_url_and_the_job_is_cancelled(tmp_path, jobs):
    # Submission and cancel go to the allowed 127.0.0.1; the status URL's 127.0.0.2 is refused by the
    # guard before any connection is made.
    port = jobs.server_address[1]
    custom = job_custom(jobs, {}, status_url=f"http://127.0.0.2:{port}/jobs/{{{{ .job.id }}}}")
    with pytest.raises(TaskFailed) as info:
        run_job(tmp_path, custom)
    assert info.value.code == "USER:SsrfBlocked"
    assert jobs.polls == {} and jobs.cancels == ["job-1"]


def test_ssrf_guard_applies_to_the_cancel_url(tmp_path, jobs):
    port = jobs.server_address[1]
    custom = job_custom(jobs, {}, timeout_seconds=0.3, cancel_url=f"http://127.0.0.2:{port}/jobs/{{{{ .job.id }}}}")
    with pytest.raises(TaskFailed) as info:
        run_job(tmp_path, custom)
    assert info.value.code == "SYSTEM:JobTimeout"
    assert jobs.cancels == [] and jobs.state("job-1") == "running"  # the guard stopped the cancel request


def test_secret_header_is_sent_on_every_request_and_never_shown(tmp_path, jobs, monkeypatch):
    monkeypatch.setenv("_FSEC_JOBAPI_TOKEN", "s3cr3t-token-value")
    custom = job_custom(
        jobs,
        {"polls": 1, "outcome": "failed", "message": "bad token s3cr3t-token-value"},
        secret_headers={"X-Api-Key": {"group": "jobapi", "key": "token"}},
    )
    with pytest.raises(TaskFailed) as info:
        run_job(tmp_path, custom)
    assert jobs.submissions[0]["headers"]["X-Api-Key"] == "s3cr3t-token-value"
    assert "s3cr3t-token-value" not in info.value.message and "bad token ***" in info.value.message


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"status_url": "http://h/jobs/{{ .job.nope }}"}, "job_fields has no 'nope'"),
        ({"headers": {"X": "{{ .inputs.a }}"}}, "shared headers are static"),
        ({"states": {"x": "MAYBE"}}, "states"),
        ({"job_fields": {}}, "at least one field"),
        ({"outputs": {"a": "no-slash"}}, "JSON pointer"),
        ({"submit": {"url": "http://h/", "json_body": {}, "form_body": {}}}, "not both"),
    ],
)
def test_config_validation(change, match):
    custom = {"submit": {"url": "http://h/jobs"}, "status_url": "http://h/jobs/{{ .job.id }}", **change}
    with pytest.raises(ConfigError, match=match):
        validate_config(HTTPJobExecutor, custom)


def test_config_from_struct_floats_and_version():
    custom = {
        "version": 1.0,
        "submit": {"url": "http://h/jobs", "expected_status": [201.0]},
        "status_url": "http://h/jobs/{{ .job.id }}",
        "max_poll_failures": 3.0,
        "states": {"DONE": "succeeded"},
    }
    config = validate_config(HTTPJobExecutor, custom)
    assert (config.version, config.max_poll_failures, config.submit.expected_status) == (1, 3, [201])
    assert config.phase_of("Done").value == "SUCCEEDED"


# ------------------------------------------------------------------------------- subprocesses


class Run:
    """One ``taskbox execute`` of an http-job template, as a container would run it."""

    def __init__(self, tmp_path, custom, outputs=None):
        self.tmp = tmp_path
        tpl = make_template("http-job", {}, outputs or {}, custom)
        self.template = put(str(tmp_path / "task.pb"), tpl.SerializeToString())
        self.inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({}, {}))
        self.prefix = str(tmp_path / "out")
        self.outputs = outputs or {}

    def start(self, checkpoint, prev=None, **env):
        extra = ["--checkpoint-path", checkpoint] + (["--prev-checkpoint", prev] if prev else [])
        args = execute_args(self.inputs, self.prefix, self.template, None, *extra)
        pipe = subprocess.PIPE
        return subprocess.Popen(args, env=subprocess_env(**env), stdout=pipe, stderr=pipe, text=True)


def record(checkpoint):
    return json.loads(storage.read_bytes(storage.join(checkpoint, DATA_FILE)))


def finish(proc, timeout=60):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_execute_runs_a_job_to_its_outputs(tmp_path, jobs):
    custom = job_custom(jobs, {"polls": 1, "result": {"rows": 5}}, outputs={"rows": "/result/rows"})
    run = Run(tmp_path, custom, {"rows": INT})
    checkpoint = str(tmp_path / "cp1")
    code, err = finish(run.start(checkpoint))
    assert code == 0, err
    assert read_outputs(run.prefix, run.outputs) == {"rows": 5}
    assert record(checkpoint)["state"] == "succeeded" and record(checkpoint)["handle"]["job"] == {"id": "job-1"}
    # A rerun into the same prefix re-reads the finished job's outputs; it submits nothing.
    code, err = finish(run.start(checkpoint))
    assert code == 0, err
    assert read_outputs(run.prefix, run.outputs) == {"rows": 5} and len(jobs.submissions) == 1


def test_sigterm_mid_job_cancels_it_and_commits_a_recoverable_error(tmp_path, jobs):
    run = Run(tmp_path, job_custom(jobs, {}))
    checkpoint = str(tmp_path / "cp1")
    proc = run.start(checkpoint, TASKBOX_TERM_GRACE_S="8")
    jobs.wait_for(lambda: jobs.polls["job-1"] >= 1)
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 143, err
    assert jobs.state("job-1") == "cancelled" and jobs.cancels == ["job-1"]
    error = read_error(run.prefix)
    assert error.code == "SYSTEM:Terminated"
    assert error.kind == errors_pb2.ContainerError.RECOVERABLE and error.origin == execution_pb2.ExecutionError.SYSTEM
    assert not os.path.exists(os.path.join(run.prefix, "outputs.pb"))
    assert record(checkpoint)["state"] == "cancelled"
    # The next start does not resume a cancelled job: it submits a new one.
    proc = run.start(checkpoint)
    jobs.wait_for(lambda: "job-2" in jobs.jobs)
    jobs.finish("job-2")
    code, err = finish(proc)
    assert code == 0, err
    assert [s["id"] for s in jobs.submissions] == ["job-1", "job-2"]


def test_sigkill_then_rerun_resumes_the_same_job(tmp_path, jobs):
    run = Run(tmp_path, job_custom(jobs, {"result": {"rows": 9}}, outputs={"rows": "/result/rows"}), {"rows": INT})
    checkpoint = str(tmp_path / "cp1")
    proc = run.start(checkpoint)
    jobs.wait_for(lambda: jobs.polls["job-1"] >= 1)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert jobs.state("job-1") == "running" and record(checkpoint)["state"] == "active"
    rerun = run.start(checkpoint)
    polls_before = jobs.polls["job-1"]
    jobs.wait_for(lambda: jobs.polls["job-1"] > polls_before)
    jobs.finish("job-1")
    code, err = finish(rerun)
    assert code == 0, err
    assert read_outputs(run.prefix, run.outputs) == {"rows": 9}
    assert len(jobs.submissions) == 1 and jobs.cancels == []
    assert "resuming the job" in err


def test_failure_on_the_server_gives_a_user_error_document(tmp_path, jobs):
    run = Run(tmp_path, job_custom(jobs, {"polls": 1, "outcome": "failed", "message": "quota exceeded for project x"}))
    code, err = finish(run.start(str(tmp_path / "cp1")))
    assert code == 0, err
    error = read_error(run.prefix)
    assert error.code == "USER:JobFailed" and "quota exceeded for project x" in error.message
    assert error.kind == errors_pb2.ContainerError.NON_RECOVERABLE and error.origin == execution_pb2.ExecutionError.USER


def test_next_attempt_resumes_from_prev_checkpoint(tmp_path, jobs):
    run = Run(tmp_path, job_custom(jobs, {"result": {"rows": 1}}, outputs={"rows": "/result/rows"}), {"rows": INT})
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
    assert read_outputs(run.prefix, run.outputs) == {"rows": 1} and len(jobs.submissions) == 1
    assert record(second)["state"] == "succeeded" and record(second)["attempt"] == 1


def test_a_gone_job_is_submitted_again(tmp_path, jobs):
    run = Run(tmp_path, job_custom(jobs, {"result": {"rows": 2}}, outputs={"rows": "/result/rows"}), {"rows": INT})
    checkpoint = str(tmp_path / "cp1")
    proc = run.start(checkpoint)
    jobs.wait_for(lambda: jobs.polls["job-1"] >= 1)
    proc.kill()
    proc.communicate(timeout=30)
    jobs.forget("job-1")
    proc = run.start(checkpoint)
    jobs.wait_for(lambda: "job-2" in jobs.jobs)
    jobs.finish("job-2")
    code, err = finish(proc)
    assert code == 0, err
    assert read_outputs(run.prefix, run.outputs) == {"rows": 2}
    assert [s["id"] for s in jobs.submissions] == ["job-1", "job-2"] and "is gone" in err


# ----------------------------------------------------------------------------------- authoring


def test_authoring_http_job_task(tmp_path, jobs):
    from taskbox.authoring import HTTPJobTask

    task = HTTPJobTask(
        "count_rows",
        submit_url=jobs.base + "/jobs",
        json_body={"polls": 1, "result": {"rows": "{{ .inputs.n }}"}},
        job_fields={"id": "/job/id"},
        status_url=jobs.base + "/jobs/{{ .job.id }}",
        cancel_url=jobs.base + "/jobs/{{ .job.id }}",
        inputs={"n": int},
        outputs={"rows": int},
        output_pointers={"rows": "/result/rows"},
        secret_headers={"X-Key": {"group": "g", "key": "k"}},
        **FAST,
    )
    tpl = task.to_template(version="v1")
    args = list(tpl.container.args)
    assert tpl.type == "http-job" and args[-1] == "http-job"
    assert args[args.index("--checkpoint-path") + 1] == "{{.checkpointOutputPrefix}}"
    assert args[args.index("--prev-checkpoint") + 1] == "{{.prevCheckpointPrefix}}"
    assert args.index("--prev-checkpoint") < args.index("--resolver")
    assert [s.group for s in tpl.security_context.secrets] == ["g"]
    assert validate_config(HTTPJobExecutor, task.custom()) == task.config

    task = HTTPJobTask(
        "count_rows",
        submit_url=jobs.base + "/jobs",
        json_body={"polls": 1, "result": {"rows": "{{ .inputs.n }}"}},
        job_fields={"id": "/job/id"},
        status_url=jobs.base + "/jobs/{{ .job.id }}",
        inputs={"n": int},
        outputs={"rows": int},
        output_pointers={"rows": "/result/rows"},
        **FAST,
    )
    workdir = str(tmp_path / "w")
    assert task.run(workdir=workdir, n=12) == {"rows": 12}
    assert task.run(workdir=workdir, n=12) == {"rows": 12}  # the recorded, finished job: re-read, not resubmitted
    assert len(jobs.submissions) == 1


def test_authoring_rejects_an_invalid_job_config():
    from pydantic import ValidationError

    from taskbox.authoring import HTTPJobTask

    with pytest.raises(ValidationError, match="job_fields has no 'run'"):
        HTTPJobTask("x", submit_url="http://h/jobs", status_url="http://h/jobs/{{ .job.run }}")


def test_taskbox_run_gets_the_same_loop(tmp_path, jobs):
    from helpers import TASKBOX, run

    custom = job_custom(jobs, {"polls": 1, "result": {"rows": 3}}, outputs={"rows": "/result/rows"})
    custom["interface"] = {"outputs": {"rows": "int"}}
    (tmp_path / "job.json").write_text(json.dumps(custom))
    args = [
        TASKBOX,
        "run",
        "--executor",
        "http-job",
        "--config",
        str(tmp_path / "job.json"),
        "--outputs",
        str(tmp_path / "out"),
        "--checkpoint-path",
        str(tmp_path / "cp"),
        "-q",
    ]
    for _ in range(2):  # the second run finds the finished job in the checkpoint and re-reads it
        proc = run(args)
        assert proc.returncode == 0, proc.stderr
        assert json.loads((tmp_path / "out" / "outputs.json").read_text()) == {"rows": 3}
    assert len(jobs.submissions) == 1
