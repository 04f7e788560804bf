"""flytekit ``WebhookTask`` templates run by taskbox send what flytekit's connector sends, byte for byte.

The fixtures (tests/golden/webhook, made by tests/golden/make_webhook_fixtures.py with flytekit 1.16.31)
hold each template, its flytekit-made inputs, the request(s) flytekit's ``WebhookConnector`` sent to a
recording server and the outputs it returned. Here each template runs through ``taskbox execute``'s
pipeline against a recording server of our own, and the requests and the ``info`` output are compared.

What "the same" means where flytekit itself is not deterministic: flytekit reads ``data`` and ``headers``
from a protobuf ``Struct`` (and typed-dict inputs from a ``LiteralMap``), whose key order changes from
process to process, so JSON object members, the user headers and a GET's query parameters are compared
in any order; every byte of each member, header and parameter must match. ``User-Agent`` and
``Accept-Encoding`` name the installed httpx and its codecs, not the template, and are not compared.

Cases with an ``exception`` are where taskbox keeps a safety rule instead (docs/http.md lists them);
their expected behaviour is asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import msgpack
import pytest
from flyteidl.core import literals_pb2, tasks_pb2
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict
from recorder import Recorder, Reply

from helpers import ROOT, TASKBOX, run
from taskbox.authoring.base import LocalRun, TaskFailed

GOLDEN = ROOT / "tests" / "golden" / "webhook"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
PLACEHOLDER = MANIFEST["placeholder"]
CASES = [case["name"] for case in MANIFEST["cases"]]
NOT_COMPARED = {"user-agent", "accept-encoding"}


def forward(text: str, netloc: str) -> str:
    """The fixtures' placeholder netloc (and host, port) replaced by the recording server's."""
    port = netloc.rsplit(":", 1)[1]
    return text.replace(PLACEHOLDER, netloc).replace(":59999", f":{port}").replace("golden.invalid", "127.0.0.1")


def localize(name: str, netloc: str) -> tuple[tasks_pb2.TaskTemplate, literals_pb2.LiteralMap]:
    template = tasks_pb2.TaskTemplate.FromString((GOLDEN / f"{name}.task.pb").read_bytes())
    custom = json.loads(forward(json.dumps(MessageToDict(template.custom)), netloc))
    struct = struct_pb2.Struct()
    struct.update(custom)
    template.custom.CopyFrom(struct)
    inputs = literals_pb2.LiteralMap.FromString((GOLDEN / f"{name}.inputs.pb").read_bytes())
    for literal in inputs.literals.values():
        if literal.scalar.primitive.WhichOneof("value") == "string_value":
            literal.scalar.primitive.string_value = forward(literal.scalar.primitive.string_value, netloc)
    return template, inputs


class Outcome:
    """What taskbox did with one fixture: the requests it sent and its outputs (or its error)."""

    def __init__(self, requests: list[dict[str, Any]], outputs: bytes | None, error: TaskFailed | None,
                 netloc: str) -> None:  # fmt: skip
        self.requests = requests
        self.outputs = outputs
        self.error = error
        self.netloc = netloc  # the recording server's; the fixtures' outputs.pb name another


def run_taskbox(name: str, workdir: Path) -> Outcome:
    case = load(name)
    with Recorder() as server:
        server.reply = Reply.from_json(case["reply"])
        template, inputs = localize(name, server.netloc)
        local = LocalRun(str(workdir))
        path = local.write("task.pb", template.SerializeToString())
        outputs, error = None, None
        try:
            outputs = local.commit("taskbox.template", [path], inputs.SerializeToString())
        except TaskFailed as exc:
            error = exc
        requests = [json.loads(json.dumps(r.to_json()).replace(server.netloc, PLACEHOLDER)) for r in server.requests]
    return Outcome(requests, outputs, error, server.netloc)


def load(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text())


# ------------------------------------------------------------------------------------- comparison


def canonical_json(text: str) -> str:
    """``text`` (compact JSON, as httpx writes it) with every object's members sorted; tokens kept verbatim."""
    pos = 0

    def value() -> str:
        nonlocal pos
        char = text[pos]
        if char in "{[":
            close = "}" if char == "{" else "]"
            pos += 1
            items: list[str] = []
            while text[pos] != close:
                if char == "{":
                    key = value()
                    assert text[pos] == ":", text[pos:]
                    pos += 1
                    items.append(key + ":" + value())
                else:
                    items.append(value())
                if text[pos] == ",":
                    pos += 1
            pos += 1
            return char + ",".join(sorted(items) if char == "{" else items) + close
        start = pos
        if char == '"':
            pos += 1
            while text[pos] != '"':
                pos += 2 if text[pos] == "\\" else 1
            pos += 1
        else:
            while pos < len(text) and text[pos] not in ",]}:":
                pos += 1
        return text[start:pos]

    result = value()
    assert pos == len(text), f"trailing text: {text[pos:]!r}"
    return result


def comparable(request: dict[str, Any]) -> dict[str, Any]:
    """A recorded request with the parts flytekit orders at random put in a fixed order."""
    method, target, version = request["line"].split(" ")
    path, _, query = target.partition("?")
    params = query.split("&") if query else []
    if method == "GET":  # the query is flytekit's data, a Struct: key order is random (same-key order kept)
        params = sorted(params, key=lambda piece: piece.split("=", 1)[0])
    headers = [tuple(h.split(": ", 1)) for h in request["headers"]]
    body = request["body"]
    return {
        "method": method,
        "path": path,
        "query": params,
        "has_query": "?" in target,
        "version": version,
        "headers": sorted((n, v) for n, v in headers if n.lower() not in NOT_COMPARED),
        "body": canonical_json(body) if body.startswith(("{", "[")) else body,
    }


def typed(value: Any) -> Any:
    """``value`` with each number's type made visible (``5 == 5.0`` in Python; not on the wire)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, (bool, int, float)):
        return (type(value).__name__, repr(value))
    return value


def info_of(outputs: bytes, netloc: str) -> tuple[literals_pb2.Literal, Any]:
    """The ``info`` literal of an outputs.pb and its value, with ``netloc`` replaced by the placeholder."""
    literal = literals_pb2.LiteralMap.FromString(outputs).literals["info"]
    info = msgpack.unpackb(literal.scalar.binary.value)
    if "url" in info:
        info["url"] = info["url"].replace(netloc, PLACEHOLDER)
    return literal, info


def assert_same_outputs(name: str, outputs: bytes, netloc: str) -> None:
    expected_literal, expected = info_of((GOLDEN / f"{name}.outputs.pb").read_bytes(), load(name)["netloc"])
    literal, info = info_of(outputs, netloc)
    assert literal.scalar.binary.tag == expected_literal.scalar.binary.tag == "msgpack"
    assert typed(info) == typed(expected)
    if not {"input_data", "url"} & set(expected):  # nothing from a Struct, no port: the bytes are flytekit's
        assert literal.SerializeToString() == expected_literal.SerializeToString()


# ------------------------------------------------------------------------------------------ tests


def test_fixtures_are_flytekits():
    assert MANIFEST["flytekit"] == "1.16.31"
    template = tasks_pb2.TaskTemplate.FromString((GOLDEN / "post_whole_scalars.task.pb").read_bytes())
    assert template.type == "webhook" and not template.HasField("container")
    assert template.metadata.runtime.version == MANIFEST["flytekit"]
    assert set(MessageToDict(template.custom)) == {
        "url", "method", "headers", "data", "show_data", "show_url", "timeout_sec"
    }  # fmt: skip


@pytest.mark.parametrize("name", [c for c in CASES if load(c)["exception"] is None])
def test_taskbox_sends_what_flytekit_sends(name, tmp_path):
    case = load(name)
    outcome = run_taskbox(name, tmp_path)
    assert [comparable(r) for r in outcome.requests] == [comparable(r) for r in case["requests"]]
    if case["phase"] == "SUCCEEDED":
        assert outcome.error is None, outcome.error.message
        assert outcome.outputs is not None
        assert_same_outputs(name, outcome.outputs, outcome.netloc)
    else:
        assert outcome.error is not None, f"flytekit failed ({case['message']}); taskbox succeeded"
        assert outcome.error.code.startswith("USER:"), (outcome.error.code, outcome.error.message)


def test_get_with_data_is_byte_identical_when_data_has_one_key(tmp_path):
    """Where flytekit's order is fixed (one key), the whole request is the same, byte for byte."""
    case = load("get_hidden_info")
    outcome = run_taskbox("get_hidden_info", tmp_path)
    expected = case["requests"][0]
    actual = outcome.requests[0]
    assert actual["line"] == expected["line"] and actual["body"] == expected["body"]
    strip = [h for h in expected["headers"] if h.split(":")[0].lower() not in NOT_COMPARED]
    assert [h for h in actual["headers"] if h.split(":")[0].lower() not in NOT_COMPARED] == strip


# ------------------------------------------------------------------- where taskbox keeps a safety rule


def same_except_target(name: str, outcome: Outcome, target: str) -> None:
    expected = dict(comparable(load(name)["requests"][0]))
    actual = comparable(outcome.requests[0])
    assert load(name)["requests"][0]["line"].split(" ")[1] != target  # flytekit's differs
    assert f"{actual['path']}{'?' if actual['has_query'] else ''}{'&'.join(actual['query'])}" == target
    for key in ("method", "headers", "body"):
        assert actual[key] == expected[key]


def test_a_slash_in_a_path_value_stays_in_its_segment(tmp_path):
    outcome = run_taskbox("safety_path_slash", tmp_path)
    assert outcome.error is None
    same_except_target("safety_path_slash", outcome, "/items/a%2Fb")
    _, info = info_of(outcome.outputs, outcome.netloc)
    assert info["url"] == f"http://{PLACEHOLDER}/items/a%2Fb"


def test_a_dot_segment_value_is_refused(tmp_path):
    outcome = run_taskbox("safety_path_dotdot", tmp_path)
    assert outcome.requests == [] and outcome.error is not None
    assert outcome.error.code == "USER:InvalidInput"


def test_an_ampersand_in_a_query_value_stays_in_its_parameter(tmp_path):
    outcome = run_taskbox("safety_query_ampersand", tmp_path)
    assert outcome.error is None
    same_except_target("safety_query_ampersand", outcome, "/hook?q=1%26admin=true")


def test_a_host_value_cannot_carry_a_path(tmp_path):
    outcome = run_taskbox("safety_host_injection", tmp_path)
    assert outcome.requests == [] and outcome.error is not None
    assert outcome.error.code == "USER:InvalidInput"


# ------------------------------------------------------------------ the CLI, and flytekit reading back

READ_WITH_FLYTEKIT = r"""
import json, sys
from flyteidl.core import literals_pb2
from flytekit import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import Literal

ctx = FlyteContextManager.current_context()
result = []
for path in sys.argv[1:]:
    lm = literals_pb2.LiteralMap()
    lm.ParseFromString(open(path, "rb").read())
    value = TypeEngine.to_python_value(ctx, Literal.from_flyte_idl(lm.literals["info"]), dict)
    result.append(json.dumps(value, sort_keys=True))
print(json.dumps(result))
"""


def flytekit_python() -> str:
    """flytekit's interpreter: $TASKBOX_FLYTEKIT_PYTHON or .venv-flytekit (``make flytekit-venv``)."""
    python = os.environ.get("TASKBOX_FLYTEKIT_PYTHON") or str(ROOT / ".venv-flytekit" / "bin" / "python")
    if not Path(python).exists():
        pytest.fail(f"{python} is missing: run `make flytekit-venv`")
    return python


def test_taskbox_execute_cli_and_flytekit_reads_the_outputs(tmp_path):
    """``taskbox execute`` (a subprocess) runs a flytekit webhook template; flytekit reads ``info`` back."""
    name = "post_whole_collections"
    with Recorder() as server:
        template, inputs = localize(name, server.netloc)
        (tmp_path / "task.pb").write_bytes(template.SerializeToString())
        (tmp_path / "inputs.pb").write_bytes(inputs.SerializeToString())
        prefix = tmp_path / "out"
        proc = run(
            [TASKBOX, "execute", "--inputs", str(tmp_path / "inputs.pb"), "--output-prefix", str(prefix),
             "--raw-output-data-prefix", str(tmp_path / "raw"), "--resolver", "taskbox.template", "--",
             str(tmp_path / "task.pb")],
            TASKBOX_HTTP_ALLOW="127.0.0.1/32",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        sent = [json.loads(json.dumps(r.to_json()).replace(server.netloc, PLACEHOLDER)) for r in server.requests]
        outputs = (prefix / "outputs.pb").read_bytes()
        netloc = server.netloc
    assert [comparable(r) for r in sent] == [comparable(r) for r in load(name)["requests"]]
    assert_same_outputs(name, outputs, netloc)
    python = flytekit_python()
    (tmp_path / "taskbox.pb").write_bytes(outputs)
    proc = subprocess.run(
        [python, "-c", READ_WITH_FLYTEKIT, str(tmp_path / "taskbox.pb"), str(GOLDEN / f"{name}.outputs.pb")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours, theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ours.replace(netloc, PLACEHOLDER) == theirs.replace(load(name)["netloc"], PLACEHOLDER)  # 5 and 5.0 differ
