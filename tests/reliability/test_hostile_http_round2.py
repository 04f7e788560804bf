"""The hostile corpus, HTTP round 2 (issue 14, items 1-5), through ``taskbox execute`` subprocesses.

Why: what a hostile server or input could still do to the ``http`` and ``http-job`` executors after the
first round: carry a secret header to another origin through a redirect and the pages after it, change
the request path with a dot segment (an input, or a job id the server returns), echo a secret in an
encoding the redactor missed or across the cut of a body excerpt, make a request that can never be sent
look like a transient platform failure, and lose a submitted job to a SIGKILL before its handle was
recorded. Each run ends in the typed error the contract promises or in correct outputs, and is recorded
in the reliability ledger under ``hostile HTTP (round 2)``. Servers are on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "http"))

import httptesting  # noqa: E402
import jobserver  # noqa: E402
from hostile import expect_error, put_bytes  # noqa: E402

from helpers import encode_inputs, execute_args, list_of, make_template, read_outputs, run, simple, subprocess_env  # noqa: E402
from reliability.ledger import LEDGER, OUTPUTS, judge  # noqa: E402
from taskbox import storage  # noqa: E402
from taskbox.checkpoints import DATA_FILE  # noqa: E402

pytestmark = pytest.mark.timeout(120)

FAMILY = "hostile HTTP (round 2)"
STR, INT, STRUCT = simple("STRING"), simple("INTEGER"), simple("STRUCT")
SECRET = "tok/AbC&x+y=z-secret-9"
ALLOW = {"TASKBOX_HTTP_ALLOW": "127.0.0.1/32", "TASKBOX_HTTP_BACKOFF_BASE_S": "0.01"}
KEY = {"X-Api-Key": {"group": "api", "key": "key"}}


def _execute(tmp_path: Path, task_type: str, custom: dict[str, Any], inputs: dict[str, Any] | None = None,
             outputs: dict[str, Any] | None = None, values: dict[str, Any] | None = None, **env: str):  # fmt: skip
    template = put_bytes(tmp_path / "task.pb", make_template(task_type, inputs, outputs, custom).SerializeToString())
    inputs_pb = put_bytes(tmp_path / "inputs.pb", encode_inputs(values or {}, inputs or {}))
    prefix = str(tmp_path / "out")
    proc = run(execute_args(str(inputs_pb), prefix, str(template)), **{**ALLOW, **env})
    return proc, prefix


def _record_outputs(prefix: str, proc: Any, check: Any) -> None:
    verdict, detail = judge(prefix, outputs_ok=check)
    LEDGER.record(FAMILY, verdict, faults=1, detail=detail)
    assert verdict == OUTPUTS, f"{detail}\n{proc.stderr[-3000:]}"


# ----------------------------------------------------------------------------- 1. origin-bound secrets


@pytest.mark.parametrize("mode", ["link", "cursor"])
def test_secret_never_reaches_the_origin_a_redirect_and_its_pages_lead_to(tmp_path, mode):
    pagination = {"next": "link", "items_pointer": "/items", "output": "items"}
    if mode == "cursor":
        pagination = {"next": "cursor", "items_pointer": "/data/items", "cursor_pointer": "/next", "output": "items"}
    with httptesting.running() as a, httptesting.running() as b:
        custom = {"url": f"{a.base}/redirect?to={b.base}/pages/{mode}", "follow_redirects": True,
                  "secret_headers": KEY, "pagination": pagination}  # fmt: skip
        outputs = {"items": list_of(STRUCT)}
        proc, prefix = _execute(tmp_path, "http", custom, outputs=outputs, _FSEC_API_KEY=SECRET)
        _record_outputs(
            prefix, proc, lambda: [i["n"] for i in read_outputs(prefix, outputs)["items"]] == [1, 2, 3, 4, 5]
        )
        assert [r["headers"].get("X-Api-Key") for r in a.requests] == [SECRET]
        assert len(b.requests) == 3 and all("X-Api-Key" not in r["headers"] for r in b.requests)


# ----------------------------------------------------------------------------- 2. one path segment


@pytest.mark.parametrize("value", ["..", ".", "%2e%2e", "%2E.", "..\\", "a/../..", "%252e%252e"])
def test_dot_segment_input_never_changes_the_path(tmp_path, value):
    with httptesting.running() as server:
        custom = {"method": "POST", "url": server.base + "/api/users/{{ .inputs.id }}/delete"}
        proc, prefix = _execute(tmp_path, "http", custom, {"id": STR}, values={"id": value})
        expect_error(FAMILY, proc, prefix, "USER:InvalidInput", ("one path segment",))
        assert server.requests == []


@pytest.mark.parametrize("job_id", ["..", "%2e%2e"])
def test_a_job_id_with_dot_segments_never_changes_the_cancel_path(tmp_path, job_id):
    with jobserver.running() as jobs:
        custom = {"submit": {"url": jobs.base + "/jobs", "json_body": {"id": job_id}}, "job_fields": {"id": "/job/id"},
                  "status_url": jobs.base + "/v1/jobs/{{ .job.id }}",
                  "cancel_url": jobs.base + "/v1/jobs/{{ .job.id }}/cancel", "poll_interval_seconds": 0.05}  # fmt: skip
        proc, prefix = _execute(tmp_path, "http-job", custom)
        expect_error(FAMILY, proc, prefix, "USER:ResponseShape", ("one path segment",))
        assert [path for _m, path, _h in jobs.seen] == ["/jobs"]


# ----------------------------------------------------------------------------- 3. redaction


def _forms_of(secret: str) -> list[str]:
    b64 = base64.b64encode(secret.encode()).decode()
    return [secret, secret.replace("/", "\\/"), quote(secret, safe=""), b64, b64.rstrip("="),
            "".join(f"\\u{ord(c):04X}" for c in secret), secret[:12], b64[:12]]  # fmt: skip


@pytest.mark.parametrize("route", ["escaped/401", "status/401"])
def test_a_401_echoing_the_token_in_any_encoding_leaks_nothing(tmp_path, route):
    with httptesting.running() as server:
        custom = {
            "url": f"{server.base}/{route}",
            "secret_headers": KEY,
            "auth": {"type": "basic", "username": "user", "password": {"group": "api", "key": "key"}},
        }
        proc, prefix = _execute(tmp_path, "http", custom, _FSEC_API_KEY=SECRET)
        error = expect_error(FAMILY, proc, prefix, "USER:HTTPStatus", ("401",))
    basic = base64.b64encode(f"user:{SECRET}".encode()).decode()
    for form in _forms_of(SECRET) + _forms_of(f"user:{SECRET}") + [basic[:16]]:
        assert form not in error.message, form
        assert form not in proc.stderr, form


def test_a_secret_across_the_excerpt_cut_leaves_no_prefix(tmp_path):
    """The body excerpt is cut at 512 characters: a token straddling the cut must be masked whole."""
    with httptesting.running() as server:
        custom = {"url": f"{server.base}/status/403", "headers": {"A-Pad": "p"}, "secret_headers": KEY}
        (tmp_path / "probe").mkdir()  # where does the header land in the echoed body?
        _execute(tmp_path / "probe", "http", custom, _FSEC_API_KEY="Q" * len(SECRET))
        at = json.dumps(server.requests[0]["headers"]).index("Q" * len(SECRET))
        pad = 1 + 512 - len(SECRET) // 2 - at  # the secret's middle on the cut
        custom = {"url": f"{server.base}/status/403", "headers": {"A-Pad": "p" * pad}, "secret_headers": KEY}
        proc, prefix = _execute(tmp_path, "http", custom, _FSEC_API_KEY=SECRET)
        body = json.dumps(server.requests[-1]["headers"])
        assert body.index(SECRET) < 512 < body.index(SECRET) + len(SECRET)
        error = expect_error(FAMILY, proc, prefix, "USER:HTTPStatus", ("403",))
    assert SECRET[:6] not in error.message and SECRET[:6] not in proc.stderr


# ----------------------------------------------------------------------------- 4. never sendable


NEVER_SENDABLE = {
    "percent-encoded-host": ({"url": "http://%31%32%37.0.0.1:{port}/echo"}, {}, "USER:InvalidConfig"),
    "trailing-space-in-host": ({"url": "http://127.0.0.1 :{port}/echo"}, {}, "USER:InvalidConfig"),
    "label-over-63": ({"url": "http://" + "a" * 64 + ".test:{port}/"}, {}, "USER:InvalidConfig"),
    "non-ascii-header-in-config": ({"url": "{base}/echo", "headers": {"X-Name": "café"}}, {}, "USER:InvalidConfig"),
    "crlf-header-in-config": (
        {"url": "{base}/echo", "headers": {"X-Name": "a\r\nX-Evil: 1"}},
        {},
        "USER:InvalidConfig",
    ),
    "non-ascii-header-from-input": (
        {"url": "{base}/echo", "headers": {"X-Name": "{{ .inputs.n }}"}},
        {"n": "café"},
        "USER:InvalidInput",
    ),
    "crlf-header-from-input": (
        {"url": "{base}/echo", "headers": {"X-Name": "{{ .inputs.n }}"}},
        {"n": "a\r\nX-Evil: 1"},
        "USER:InvalidInput",
    ),
}


@pytest.mark.parametrize("name", sorted(NEVER_SENDABLE))
def test_a_request_that_can_never_be_sent_is_a_user_error_not_retried(tmp_path, name):
    config, values, code = NEVER_SENDABLE[name]
    with httptesting.running() as server:
        text = json.dumps(config).replace("{base}", server.base).replace("{port}", str(server.server_address[1]))
        inputs = {k: STR for k in values}
        proc, prefix = _execute(tmp_path, "http", json.loads(text), inputs, values=values)
        expect_error(FAMILY, proc, prefix, code, recoverable=False)
        assert server.requests == [] and "retry 1/" not in proc.stderr


# ----------------------------------------------------------------------------- 5. SIGKILL before the checkpoint


def test_sigkill_between_submit_and_checkpoint_then_rerun_gives_one_job(tmp_path):
    with jobserver.running() as jobs:
        custom = {"submit": {"url": jobs.base + "/jobs", "json_body": {"result": {"rows": 4}}},
                  "job_fields": {"id": "/job/id"}, "status_url": jobs.base + "/jobs/{{ .job.id }}",
                  "cancel_url": jobs.base + "/jobs/{{ .job.id }}", "outputs": {"rows": "/result/rows"},
                  "poll_interval_seconds": 0.05, "max_poll_interval_seconds": 0.2}  # fmt: skip
        outputs = {"rows": INT}
        template = put_bytes(tmp_path / "task.pb", make_template("http-job", {}, outputs, custom).SerializeToString())
        inputs = put_bytes(tmp_path / "inputs.pb", encode_inputs({}, {}))
        prefix, checkpoint = str(tmp_path / "out"), str(tmp_path / "cp")
        args = execute_args(str(inputs), prefix, str(template), None, "--checkpoint-path", checkpoint)
        env = subprocess_env(**ALLOW, FLYTE_INTERNAL_EXECUTION_ID="exec-7", FLYTE_ATTEMPT_NUMBER="2")
        jobs.hold.set()
        first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        jobs.wait_for(lambda: "job-1" in jobs.jobs)
        first.kill()
        first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL and not storage.exists(storage.join(checkpoint, DATA_FILE))
        jobs.hold.clear()
        jobs.release.set()
        rerun = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        jobs.wait_for(lambda: jobs.polls["job-1"] >= 1)
        jobs.finish("job-1")
        _out, err = rerun.communicate(timeout=60)
        _record_outputs(prefix, rerun, lambda: read_outputs(prefix, outputs) == {"rows": 4})
        assert list(jobs.jobs) == ["job-1"], err
        assert len({s["key"] for s in jobs.submissions}) == 1 and len(jobs.submissions) == 2
