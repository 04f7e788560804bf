"""Write the webhook golden fixtures with flytekit: ``WebhookTask`` templates, inputs, and what its connector sent.

Run with flytekit's own interpreter (``make golden`` does; or by hand)::

    .venv-flytekit/bin/python tests/golden/make_webhook_fixtures.py

For every case it serializes a flytekit ``WebhookTask`` template and flytekit-made inputs, then runs
flytekit's real ``WebhookConnector.do`` (in this process) against a recording HTTP server on 127.0.0.1
and stores the exact request(s) the connector sent and the outputs it produced, as the connector
service would return them to propeller (``Resource.to_flyte_idl()``). tests/http/test_webhook_golden.py
runs the same template and inputs through ``taskbox execute`` against its own recording server and
compares.

The templates and inputs hold the placeholder netloc ``golden.invalid:59999``; the test (and this script,
before running the connector) replaces it with the recording server's ``127.0.0.1:PORT`` (then ``:59999``
with ``:PORT`` and ``golden.invalid`` with ``127.0.0.1``, for templates whose host is an input). Recorded
requests have the real netloc replaced back by the placeholder.

Files, in tests/golden/webhook/:
    <case>.task.pb        the TaskTemplate (flyteidl, as ``pyflyte register`` would send it)
    <case>.inputs.pb      the inputs LiteralMap, made by flytekit's TypeEngine
    <case>.outputs.pb     the connector's outputs LiteralMap (only for cases that succeed), verbatim: its
                          ``url`` holds the recording server's netloc, given as ``netloc`` in <case>.json
    <case>.json           the case: description, phase, message, recorded requests, reply, parity note
    manifest.json         flytekit's version, the placeholder, the cases

The script imports nothing from taskbox (only tests/http/recorder.py, standard library only).
"""

# ruff: noqa: UP006, UP035, UP045 - typing.List/Optional spelled out: flytekit reads these annotations

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import json
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
OUT = HERE / "webhook"
sys.path.insert(0, str(HERE.parent / "http"))

from recorder import Recorder, Reply  # noqa: E402  (stdlib-only helper shared with the test)

PLACEHOLDER = "golden.invalid:59999"
BASE = f"http://{PLACEHOLDER}"
UTC = datetime.UTC


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    name: str
    count: int
    ratio: float
    tags: List[str]
    when: Optional[str] = None


#: Input types used by the cases (a case declares the subset it uses).
TYPES: Dict[str, Any] = {
    "i": int,
    "neg": int,
    "big": int,
    "f": float,
    "tiny": float,
    "b": bool,
    "t": bool,
    "s": str,
    "u": str,
    "empty": str,
    "none": Optional[str],
    "maybe": Optional[int],
    "xs": List[int],
    "names": List[str],
    "m": Dict[str, int],
    "m1": Dict[str, int],
    "d": dict,
    "dc": Point,
    "dt": datetime.datetime,
    "dur": datetime.timedelta,
    "nested": List[Dict[str, int]],
    "mlist": Dict[str, List[float]],
    "color": Color,
    "host": str,
    "url": str,
    "path": str,
    "q": str,
}

VALUES: Dict[str, Any] = {
    "i": 5,
    "neg": -42,
    "big": 2**53 + 1,
    "f": 2.5,
    "tiny": 1e-07,
    "b": False,
    "t": True,
    "s": "héllo wörld",
    "u": "a b+c&d=e/f?g#h",
    "empty": "",
    "none": None,
    "maybe": 7,
    "xs": [1, 2, 3],
    "names": ["x", "y z"],
    "m": {"a": 1, "b": 2},
    "m1": {"k": 10},
    "d": {"z": 1, "a": [1, 2.5, "x"], "n": None, "ok": True, "deep": {"y": "é"}},
    "dc": Point(name="p", count=3, ratio=0.5, tags=["t1", "t2"]),
    "dt": datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "dur": datetime.timedelta(minutes=1, seconds=30, microseconds=250000),
    "nested": [{"a": 1}, {"b": 2}],
    "mlist": {"k": [1.0, 2.5]},
    "color": Color.BLUE,
    "host": "golden.invalid",
    "url": f"{BASE}/whole/path?x=1",
    "path": "a/b",
    "q": "1&admin=true",
}

SCALARS = ["i", "neg", "big", "f", "tiny", "b", "t", "s", "empty", "none", "maybe", "color"]
COLLECTIONS = ["xs", "names", "m", "d", "dc", "nested", "mlist"]
TIMES = ["dt", "dur"]
# In one string, a typed dict is rendered with str() in the order flytekit reads the protobuf map, which
# changes from process to process: the one-key map keeps the fixture stable (taskbox's sorted order is one of
# flytekit's; tests/http/test_http_webhook.py pins it for a map of several keys).
EVERY = SCALARS + ["m1" if n == "m" else n for n in COLLECTIONS] + TIMES


def whole(names: List[str]) -> Dict[str, str]:
    return {n: f"{{inputs.{n}}}" for n in names}


def in_text(names: List[str]) -> Dict[str, str]:
    return {n: f"<{{inputs.{n}}}>" for n in names}


@dataclasses.dataclass
class Case:
    """One webhook template, its inputs, and the reply the recording server gives."""

    name: str
    description: str
    url: str
    method: str = "POST"
    headers: Optional[Dict[str, str]] = None
    data: Optional[Dict[str, Any]] = None
    inputs: List[str] = dataclasses.field(default_factory=list)
    show_data: bool = True
    show_url: bool = True
    reply: Reply = dataclasses.field(default_factory=Reply)
    #: ``None``: taskbox must send the same request and produce the same outputs. Otherwise the reason
    #: taskbox deliberately differs (a safety rule); the test checks taskbox's documented behaviour instead.
    exception: Optional[str] = None
    values: Dict[str, Any] = dataclasses.field(default_factory=dict)


CASES = [
    Case(
        "post_whole_scalars",
        "POST; every scalar type as a whole data value (keeps its JSON type)",
        f"{BASE}/hook",
        data=whole(SCALARS),
        inputs=SCALARS,
    ),
    Case(
        "post_scalars_in_text",
        "POST; every scalar type inside a longer string (Python str(): False, None, 1e-07)",
        f"{BASE}/hook",
        data={"text": " ".join(f"{n}={{inputs.{n}}}" for n in SCALARS), **in_text(SCALARS)},
        inputs=SCALARS,
    ),
    Case(
        "post_whole_collections",
        "POST; lists, typed and untyped dicts, a dataclass, nested containers as whole data values",
        f"{BASE}/hook",
        data=whole(COLLECTIONS),
        inputs=COLLECTIONS,
    ),
    Case(
        "post_collections_in_text",
        "POST; the same containers inside strings (Python repr of lists and typed dicts, JSON text of "
        "untyped dicts and dataclasses)",
        f"{BASE}/hook",
        data={**in_text(["xs", "names", "m1", "d", "dc", "nested", "mlist"])},
        inputs=["xs", "names", "m1", "d", "dc", "nested", "mlist"],
    ),
    Case(
        "post_times",
        "POST; datetime (ISO text) and duration (seconds) whole and inside strings",
        f"{BASE}/hook",
        data={**whole(TIMES), "text": "at {inputs.dt} for {inputs.dur}s"},
        inputs=TIMES,
    ),
    Case(
        "post_static_data",
        "POST; literal numbers in the template (a protobuf Struct: ints come back as floats), "
        "bools, null, nesting, braces that are no placeholder, a space before a placeholder",
        f"{BASE}/hook",
        data={
            "n": 5,
            "neg": -3,
            "x": 2.5,
            "huge": 12345678901234567890,
            "flag": True,
            "nothing": None,
            "list": [1, "two", [3, {"four": 4}]],
            "obj": {"k": [1, 2], "s": "{not_a_placeholder}"},
            "spaced": " {inputs.i}",
            "twice": "{inputs.i}{inputs.i}",
            "unicode": "ü ✓ 😀",
        },
        inputs=["i"],
    ),
    Case(
        "post_nested_placeholders",
        "POST; placeholders in nested lists and dicts of data, and {inputs.m.a} (a key of a typed dict)",
        f"{BASE}/hook",
        data={
            "outer": {"inner": ["{inputs.i}", "x-{inputs.b}", {"deep": "{inputs.xs}"}]},
            "key": "{inputs.m.a}",
            "key_text": "a={inputs.m.a}",
            "{inputs.s}": "keys are not rendered",
        },
        inputs=["i", "b", "xs", "m", "s"],
    ),
    Case(
        "post_every_type_one_string",
        "POST; every input type in one string; show_data and show_url off",
        f"{BASE}/hook",
        data={"all": " | ".join(f"{{inputs.{n}}}" for n in EVERY)},
        inputs=EVERY,
        show_data=False,
        show_url=False,
    ),
    Case(
        "get_query_from_data",
        "GET; data becomes the query (httpx params: bools as true/false, lists repeated, None empty, "
        "dicts as Python repr); the URL's own query is dropped; info.url is the URL without data",
        f"{BASE}/search?dropped=1",
        method="GET",
        data={
            **whole(["i", "f", "b", "s", "none", "xs", "m1", "d", "dc", "dt", "dur", "color", "maybe"]),
            "text": "b={inputs.b} xs={inputs.xs}",
            "n": 5,
            "static": {"k": [1, 2]},
        },
        inputs=["i", "f", "b", "s", "none", "xs", "m1", "d", "dc", "dt", "dur", "color", "maybe"],
    ),
    Case(
        "get_without_data",
        "GET with no data: flytekit's empty data {} still replaces the URL's own query (sent as /plain)",
        f"{BASE}/plain?a=1&b=two",
        method="GET",
        data=None,
        inputs=[],
    ),
    Case(
        "get_hidden_info",
        "GET; show_data and show_url off: info is only status_code and response_data",
        f"{BASE}/items",
        method="GET",
        data={"q": "{inputs.s}"},
        inputs=["s"],
        show_data=False,
        show_url=False,
    ),
    Case(
        "url_path_values",
        "POST; values in URL path segments: str() of int, float, bool, None, list, typed dict, unicode, space",
        f"{BASE}/items/{{inputs.i}}/{{inputs.f}}/{{inputs.b}}/{{inputs.none}}/{{inputs.xs}}/{{inputs.m1}}/"
        "{inputs.s}/x{inputs.empty}y",
        inputs=["i", "f", "b", "none", "xs", "m1", "s", "empty"],
        data={},
    ),
    Case(
        "url_query_values",
        "POST; values in the URL's own query (kept for POST): str() text, encoded by httpx",
        f"{BASE}/hook?i={{inputs.i}}&b={{inputs.b}}&xs={{inputs.xs}}&s={{inputs.s}}&dt={{inputs.dt}}#frag-{{inputs.i}}",
        inputs=["i", "b", "xs", "s", "dt"],
        data={"k": "v"},
    ),
    Case(
        "url_host_from_input",
        "POST; the host is an input (a host name is allowed there)",
        "http://{inputs.host}:59999/hook",
        inputs=["host"],
        data={},
    ),
    Case(
        "url_whole_input",
        "POST; the whole URL is an input",
        "{inputs.url}",
        inputs=["url"],
        data={"k": 1},
    ),
    Case(
        "headers",
        "POST; header values with placeholders (str() text), a whole str value, a user Content-Type",
        f"{BASE}/hook",
        headers={
            "X-Int": "n={inputs.i}",
            "X-Float": "{inputs.f} units",
            "X-Bool": "b={inputs.b}",
            "X-None": "v={inputs.none}",
            "X-List": "xs={inputs.xs}",
            "X-Dict": "m={inputs.m1}",
            "X-Time": "{inputs.dt}",
            "X-Str": "{inputs.q}",
            "X-Static": "plain {braces}",
            "Content-Type": "application/json; charset=utf-8",
        },
        inputs=["i", "f", "b", "none", "xs", "m1", "dt", "q"],
        data={"k": "{inputs.i}"},
    ),
    Case(
        "get_headers",
        "GET; headers with placeholders and no body",
        f"{BASE}/hook",
        method="GET",
        headers={"Authorization": "Bearer {inputs.s}-{inputs.i}"},
        inputs=["s", "i"],
        data={"a": "{inputs.i}"},
        values={"s": "token"},
    ),
    Case(
        "quirk_sequential_replace",
        "POST; flytekit replaces placeholders one after another in the same string: a value holding a later "
        "placeholder's text is replaced too, and a string that becomes exactly one placeholder takes its typed value",
        f"{BASE}/hook",
        data={"chain": "{inputs.s}/{inputs.i}", "collapse": "{inputs.empty}{inputs.xs}"},
        inputs=["s", "i", "empty", "xs"],
        values={"s": "<{inputs.i}>"},
    ),
    Case(
        "response_text",
        "the reply's body decoded by its charset (latin-1 here) into response_data",
        f"{BASE}/hook",
        inputs=[],
        data={},
        reply=Reply(200, "café £5".encode("latin-1"), [("Content-Type", "text/plain; charset=latin-1")]),
    ),
    Case(
        "response_json",
        "a JSON reply stays text in response_data",
        f"{BASE}/hook",
        inputs=[],
        data={},
        reply=Reply(200, b'{"ok": true, "n": 1}', [("Content-Type", "application/json")]),
    ),
    # ------------------------------------------------------------------- flytekit fails: so must taskbox
    Case(
        "fail_status_201",
        "only 200 succeeds",
        f"{BASE}/hook",
        inputs=[],
        data={},
        reply=Reply(201, b"created"),
    ),
    Case(
        "fail_header_whole_int",
        "a header value that is exactly one non-str placeholder is refused by httpx: nothing is sent",
        f"{BASE}/hook",
        headers={"X-N": "{inputs.i}"},
        inputs=["i"],
        data={},
    ),
    Case(
        "fail_unknown_input",
        "a placeholder for an input the task does not have: nothing is sent",
        f"{BASE}/hook",
        inputs=["i"],
        data={"x": "{inputs.nope}"},
    ),
    Case(
        "fail_dotted_braces",
        "text in braces with a dot is taken for a placeholder (here JSON text): nothing is sent",
        f"{BASE}/hook",
        inputs=[],
        data={"x": 'price {"a": 1.5}'},
    ),
    Case(
        "fail_nested_key_of_str",
        "{inputs.s.x} on a str input: nothing is sent",
        f"{BASE}/hook",
        inputs=["s"],
        data={"x": "{inputs.s.x}"},
        values={"s": "xyz"},
    ),
    Case(
        "fail_header_crlf",
        "a value that puts CR/LF into a header: nothing is sent",
        f"{BASE}/hook",
        headers={"X-V": "v-{inputs.s}"},
        inputs=["s"],
        data={},
        values={"s": "a\r\nX-Injected: 1"},
    ),
    Case(
        "fail_header_non_ascii",
        "a value that puts non-ASCII text into a header: nothing is sent",
        f"{BASE}/hook",
        headers={"X-V": "v-{inputs.s}"},
        inputs=["s"],
        data={},
    ),
    Case(
        "fail_nan_in_body",
        "NaN as a whole JSON value: httpx refuses to encode it, nothing is sent",
        f"{BASE}/hook",
        inputs=["f"],
        data={"x": "{inputs.f}"},
        values={"f": float("nan")},
    ),
    Case(
        "fail_control_char_in_url",
        "a value that puts a control character into the URL: nothing is sent",
        f"{BASE}/items/{{inputs.s}}",
        inputs=["s"],
        data={},
        values={"s": "a\nb"},
    ),
    # ------------------------------------------------ taskbox keeps a safety rule (docs/http.md lists these)
    Case(
        "safety_path_slash",
        "a value with '/' in a path segment: flytekit sends /items/a/b (two segments)",
        f"{BASE}/items/{{inputs.path}}",
        inputs=["path"],
        data={},
        exception="a value stays one path segment: taskbox sends /items/a%2Fb",
    ),
    Case(
        "safety_path_dotdot",
        "'..' as a path segment: flytekit's URL resolves to another path",
        f"{BASE}/api/items/{{inputs.path}}/detail",
        inputs=["path"],
        data={},
        values={"path": ".."},
        exception="a dot segment is refused: taskbox fails with USER:InvalidInput before sending",
    ),
    Case(
        "safety_query_ampersand",
        "a value with '&' in the URL's query: flytekit sends an extra parameter admin=true",
        f"{BASE}/hook?q={{inputs.q}}",
        inputs=["q"],
        data={},
        exception="a value stays inside its query parameter: taskbox sends q=1%26admin=true",
    ),
    Case(
        "safety_host_injection",
        "a value in the host that carries a path: flytekit sends to that host and path",
        "http://{inputs.host}/hook",
        inputs=["host"],
        data={},
        values={"host": "golden.invalid:59999/admin?"},
        exception="a value in the host must be a host name or IP address: taskbox fails with USER:InvalidInput",
    ),
]


def forward(text: str, netloc: str) -> str:
    """The placeholder netloc (and host, port) replaced by the recording server's."""
    port = netloc.rsplit(":", 1)[1]
    return text.replace(PLACEHOLDER, netloc).replace(":59999", f":{port}").replace("golden.invalid", "127.0.0.1")


def backward(text: str, netloc: str) -> str:
    return text.replace(netloc, PLACEHOLDER)


def localize(task_pb: bytes, inputs_pb: bytes, netloc: str) -> tuple[Any, Any]:
    """Parse a fixture's template and inputs with the placeholder replaced by ``netloc`` (strings only)."""
    from flyteidl.core import literals_pb2, tasks_pb2
    from google.protobuf import struct_pb2
    from google.protobuf.json_format import MessageToDict

    template = tasks_pb2.TaskTemplate.FromString(task_pb)
    custom = json.loads(forward(json.dumps(MessageToDict(template.custom)), netloc))
    struct = struct_pb2.Struct()
    struct.update(custom)
    template.custom.CopyFrom(struct)
    inputs = literals_pb2.LiteralMap.FromString(inputs_pb)
    for literal in inputs.literals.values():
        if literal.scalar.primitive.WhichOneof("value") == "string_value":
            literal.scalar.primitive.string_value = forward(literal.scalar.primitive.string_value, netloc)
    return template, inputs


def main() -> int:
    import flytekit
    from flyteidl.core.execution_pb2 import TaskExecution
    from flytekit import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.extras.webhook import WebhookTask
    from flytekit.extras.webhook.connector import WebhookConnector
    from flytekit.models.literals import LiteralMap
    from flytekit.models.task import TaskTemplate
    from flytekit.tools.translator import get_serializable

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(var, None)  # the connector's httpx client trusts the environment
    from flytekit_common import serialization_settings

    settings = serialization_settings()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    ctx = FlyteContextManager.current_context()
    manifest_cases = []

    async def run_connector(template: Any, inputs: Any) -> Any:
        connector = WebhookConnector()  # a new client per case: nothing is shared between cases
        resource = await connector.do(
            task_template=TaskTemplate.from_flyte_idl(template),
            output_prefix="/tmp/golden-webhook",
            inputs=LiteralMap.from_flyte_idl(inputs),
        )
        idl = await resource.to_flyte_idl()
        await connector._client.aclose()
        return resource, idl

    for case in CASES:
        values = {n: case.values.get(n, VALUES[n]) for n in case.inputs}
        task = WebhookTask(
            name=f"golden.webhook.{case.name}",
            url=case.url,
            method=case.method,
            headers=case.headers,
            data=case.data,
            dynamic_inputs={n: TYPES[n] for n in case.inputs},
            show_data=case.show_data,
            show_url=case.show_url,
            timeout=10,
        )
        task_pb = get_serializable(OrderedDict(), settings, task).template.to_flyte_idl().SerializeToString()
        literals = {}
        for name, value in values.items():
            var = task.python_interface.inputs[name]
            literals[name] = TypeEngine.to_literal(ctx, value, var, TypeEngine.to_literal_type(var))
        inputs_pb = LiteralMap(literals=literals).to_flyte_idl().SerializeToString()
        with Recorder() as server:
            server.reply = case.reply
            template, inputs = localize(task_pb, inputs_pb, server.netloc)
            resource, idl = asyncio.run(run_connector(template, inputs))
            requests = [json.loads(backward(json.dumps(r.to_json()), server.netloc)) for r in server.requests]
            outputs_pb = idl.outputs.SerializeToString() if idl.HasField("outputs") else b""
        phase = TaskExecution.Phase.Name(resource.phase)
        (OUT / f"{case.name}.task.pb").write_bytes(task_pb)
        (OUT / f"{case.name}.inputs.pb").write_bytes(inputs_pb)
        if outputs_pb:
            (OUT / f"{case.name}.outputs.pb").write_bytes(outputs_pb)
        record = {
            "name": case.name,
            "description": case.description,
            "method": case.method,
            "inputs": case.inputs,
            "phase": phase,
            "message": backward(resource.message or "", server.netloc),
            "requests": requests,
            "reply": case.reply.to_json(),
            "exception": case.exception,
            "netloc": server.netloc,
        }
        (OUT / f"{case.name}.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        manifest_cases.append({"name": case.name, "phase": phase, "exception": case.exception})
        print(f"{case.name}: {phase} ({len(requests)} request(s))")
    manifest = {
        "flytekit": flytekit.__version__,
        "httpx": __import__("httpx").__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "placeholder": PLACEHOLDER,
        "cases": manifest_cases,
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(CASES)} cases to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
