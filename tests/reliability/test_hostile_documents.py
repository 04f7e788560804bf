"""The hostile input corpus, round 2: documents, bundle shapes and reruns, through the real entrypoint.

Why: issue 14 items 14, 15, 17 and 18. A few hundred bytes of YAML (aliases) or one huge number in a
``taskbox run`` document, a code bundle whose shape no file system can hold, and a rerun under Flyte's
distributed error strategy each used to end as a retried SYSTEM error, no error document, or a stale
error document beside the outputs. Each case runs the real CLI in a subprocess and is judged with
:func:`hostile.expect_error` (or, for reruns, by what the prefix holds) and recorded in the reliability
ledger (families ``hostile documents / taskbox run``, ``hostile archive (round 2)``, ``distributed
error rerun``).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
for sub in ("bundles", "entrypoint"):
    sys.path.insert(0, str(TESTS / sub))

from hostile import echo_template, expect_error, good_inputs, put_bytes  # noqa: E402
from test_bundle_hostile import SHAPE_REASONS, SHAPES, shape_archive  # noqa: E402
from test_run_documents import alias_bomb, merge_bomb  # noqa: E402

from helpers import TASKBOX, execute_args, run  # noqa: E402
from reliability.ledger import LEDGER, LOST, OUTPUTS  # noqa: E402
from taskbox.entrypoint.fast_execute import BUNDLES_DIR, bundle_dir  # noqa: E402

pytestmark = pytest.mark.timeout(120)

HUGE = "9" * 5000
BEYOND_DOUBLE = "9" * 400
INT_TEMPLATE = {"type": "echo", "interface": {"inputs": {"n": "int"}, "outputs": {"n": "int"}}}
TYPED_TEMPLATE = {
    "type": "echo",
    "interface": {"inputs": {"f": "float", "d": "duration", "doc": "json"}, "outputs": {"f": "float"}},
}


def _file(name: str, text: str) -> Callable[[Path], str]:
    return lambda tmp: str(put_bytes(tmp / name, text.encode()))


def _template(doc: dict) -> Callable[[Path], str]:
    return _file("task.json", json.dumps(doc))


def _yaml_template_with_custom(custom_yaml: str) -> Callable[[Path], str]:
    return _file("task.yaml", "type: echo\ncustom:\n" + textwrap.indent(custom_yaml, "  "))


# name -> (args builder: tmp -> extra args, code, words). Each must fail fast (the 120 s timeout, and
# the bombs measured in the unit tests) as the document's USER error, exit 1.
RUN_CASES: dict[str, tuple[Callable[[Path], list[str]], str, tuple[str, ...]]] = {
    "inputs-yaml-alias-bomb": (
        lambda tmp: ["--executor", "echo", "--inputs", _file("inputs.yaml", alias_bomb())(tmp)],
        "USER:InvalidInput",
        ("expands its aliases",),
    ),
    "inputs-yaml-merge-key-bomb": (
        lambda tmp: ["--executor", "echo", "--inputs", _file("inputs.yaml", merge_bomb())(tmp)],
        "USER:InvalidInput",
        ("expands its aliases",),
    ),
    "inputs-yaml-self-referencing-alias": (
        lambda tmp: ["--executor", "echo", "--inputs", _file("inputs.yaml", "xs: &a [1, *a]\n")(tmp)],
        "USER:InvalidInput",
        ("refers to itself",),
    ),
    "template-custom-alias-bomb": (
        lambda tmp: ["--template", _yaml_template_with_custom(alias_bomb())(tmp)],
        "USER:InvalidTemplate",
        ("expands its aliases",),
    ),
    "config-yaml-alias-bomb": (
        lambda tmp: ["--executor", "echo", "--config", _file("config.yaml", alias_bomb())(tmp)],
        "USER:InvalidConfig",
        ("expands its aliases",),
    ),
    "inputs-yaml-5000-digit-integer": (
        lambda tmp: ["--executor", "echo", "--inputs", _file("inputs.yaml", f"n: {HUGE}\n")(tmp)],
        "USER:InvalidInput",
        ("integer",),
    ),
    "inputs-json-5000-digit-integer-in-a-yaml-named-file": (
        lambda tmp: ["--executor", "echo", "--inputs", _file("inputs.yml", '{"n": ' + HUGE + "}")(tmp)],
        "USER:InvalidInput",
        ("integer",),
    ),
    "inputs-yaml-date-out-of-range": (
        lambda tmp: ["--executor", "echo", "--inputs", _file("inputs.yaml", "d: 0000-01-01\n")(tmp)],
        "USER:InvalidInput",
        ("year 0",),
    ),
    "config-yaml-5000-digit-integer": (
        lambda tmp: ["--executor", "echo", "--config", _file("config.yaml", f"x: {HUGE}\n")(tmp)],
        "USER:InvalidConfig",
        ("integer",),
    ),
    "template-json-5000-digit-integer": (
        lambda tmp: ["--template", _file("task.json", '{"type": "echo", "custom": {"x": ' + HUGE + "}}")(tmp)],
        "USER:InvalidTemplate",
        ("more than 4300 digits",),
    ),
    "template-custom-integer-beyond-a-double": (
        lambda tmp: ["--template", _file("task.json", '{"type": "echo", "custom": {"x": ' + BEYOND_DOUBLE + "}}")(tmp)],
        "USER:InvalidTemplate",
        ("int too large",),
    ),
    "config-integer-beyond-a-double": (
        lambda tmp: [
            "--executor",
            "http",
            "--config",
            _file(
                "config.json",
                json.dumps({"url": "https://x.test/", "method": "POST"})[:-1]
                + ', "json_body": {"x": '
                + BEYOND_DOUBLE
                + "}}",
            )(tmp),
        ],  # fmt: skip
        "USER:InvalidConfig",
        ("JSON cannot carry",),
    ),
    "int-input-5000-digits-as-a-flag": (
        lambda tmp: ["--template", _template(INT_TEMPLATE)(tmp), "--input", f"n={HUGE}"],
        "USER:InvalidInput",
        ("int64",),
    ),
    "float-input-1e999-in-json": (
        lambda tmp: [
            "--template",
            _template(TYPED_TEMPLATE)(tmp),
            "--input",
            "d=1",
            "--input",
            "doc={}",
            "--inputs",
            _file("inputs.json", '{"f": 1e999}')(tmp),
        ],  # fmt: skip
        "USER:InvalidInput",
        ("input 'f'", "finite"),
    ),
    "float-input-integer-beyond-a-double": (
        lambda tmp: [
            "--template",
            _template(TYPED_TEMPLATE)(tmp),
            "--input",
            "d=1",
            "--input",
            "doc={}",
            "--input",
            f"f={BEYOND_DOUBLE}",
        ],  # fmt: skip
        "USER:InvalidInput",
        ("input 'f'", "too large"),
    ),
    "duration-input-past-timedelta": (
        lambda tmp: [
            "--template",
            _template(TYPED_TEMPLATE)(tmp),
            "--input",
            "f=1",
            "--input",
            "doc={}",
            "--input",
            "d=1e20",
        ],  # fmt: skip
        "USER:InvalidInput",
        ("input 'd'", "out of range"),
    ),
    "duration-input-environment-infinite": (
        lambda tmp: ["--template", _template(TYPED_TEMPLATE)(tmp), "--input", "f=1", "--input", "doc={}"],
        "USER:InvalidInput",
        ("input 'd'", "out of range"),
    ),
    "struct-input-holding-infinity": (
        lambda tmp: [
            "--template",
            _template(TYPED_TEMPLATE)(tmp),
            "--input",
            "f=1",
            "--input",
            "d=1",
            "--inputs",
            _file("inputs.json", '{"doc": {"a": [1, 1e999]}}')(tmp),
        ],  # fmt: skip
        "USER:InvalidInput",
        ("input 'doc'", "infinity"),
    ),
}
RUN_CASES["template-http-timeout-past-the-clocks"] = (  # validated before any request: no packet is sent
    lambda tmp: [
        "--template",
        _template({"type": "http", "custom": {"url": "https://x.test/", "method": "GET", "read_timeout_s": 1e300}})(
            tmp
        ),  # fmt: skip
    ],
    "USER:InvalidConfig",
    ("read_timeout_s", "out of range"),
)
for _depth in (150, 500):  # past protobuf's 100 levels (the template could not be read back); past the stack
    RUN_CASES[f"config-json-nested-{_depth}-deep"] = (
        lambda tmp, depth=_depth: [
            "--executor",
            "http",
            "--config",
            _file(
                "config.json",
                '{"url": "https://x.test/", "method": "POST", "json_body": '
                + '{"a": ' * depth
                + "1"
                + "}" * depth
                + "}",
            )(tmp),
        ],  # fmt: skip
        "USER:InvalidConfig",
        ("nested too deeply",),
    )
RUN_ENV = {"duration-input-environment-infinite": {"TASKBOX_INPUT_D": "1e400"}}


@pytest.mark.parametrize("name", sorted(RUN_CASES))
def test_hostile_documents_through_taskbox_run(tmp_path, name):
    """``taskbox run``: exit 1 (user error), ``error.json`` + ``error.pb``, no outputs, no retry."""
    build, code, words = RUN_CASES[name]
    prefix = tmp_path / "out"
    proc = run([TASKBOX, "run", "--outputs", str(prefix), *build(tmp_path)], **RUN_ENV.get(name, {}))
    error = expect_error("hostile documents / taskbox run", proc, str(prefix), code, words, exit_code=1)
    document = json.loads((prefix / "error.json").read_text())
    assert (document["code"], document["exit_code"]) == (error.code, 1)
    assert not (prefix / "outputs.json").exists()


# ----------------------------------------------------------------------------- bundle shapes (fast-execute)

SENTINEL = b"do not touch\n"


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_impossible_bundle_shape_through_fast_execute(tmp_path, case):
    """``fast-execute`` rejects the shape before any member lands: USER:BundleRejected, not a retry."""
    (tmp_path / "store").mkdir()
    bundle = shape_archive(tmp_path / "store" / "evil.tar.gz", case)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sentinel.txt").write_bytes(SENTINEL)
    template = put_bytes(tmp_path / "task.pb", echo_template())
    inputs = put_bytes(tmp_path / "inputs.pb", good_inputs())
    prefix = str(tmp_path / "out")
    inner = execute_args(str(inputs), prefix, str(template))[1:]
    args = [TASKBOX, "fast-execute", "--additional-distribution", bundle, "--dest-dir", str(dest), "--", "taskbox",
            *inner]  # fmt: skip
    words = ("code bundle rejected", SHAPE_REASONS[case])
    expect_error("hostile archive (round 2)", run(args), prefix, "USER:BundleRejected", words)
    assert (dest / "sentinel.txt").read_bytes() == SENTINEL
    key = os.path.basename(bundle_dir(str(dest), bundle))
    assert sorted(os.listdir(dest)) == [BUNDLES_DIR, "sentinel.txt"]
    assert os.listdir(dest / BUNDLES_DIR) == [f".{key}.lock"]  # no tree, no staging, no download left


# ----------------------------------------------------------------------------- distributed error documents


@pytest.mark.parametrize(
    "variables", [("_F_DES", "_F_WN"), ("FLYTE_INTERNAL_DIST_ERROR_STRATEGY", "FLYTE_INTERNAL_WORKER_NAME")]
)
def test_rerun_of_a_distributed_worker_leaves_no_stale_error_document(tmp_path, variables):
    """A failed run, then a successful rerun of the same worker into the same prefix: ``outputs.pb`` alone."""
    strategy, worker = variables
    env = {strategy: "Earliest", worker: "trainer-worker-0"}
    template = put_bytes(tmp_path / "task.pb", echo_template())
    prefix = tmp_path / "out"
    bad = put_bytes(tmp_path / "bad.pb", b"\x0a\xff\xff junk")
    first = run(execute_args(str(bad), str(prefix), str(template)), **env)
    assert first.returncode == 0, first.stderr[-2000:]
    failed = sorted(os.listdir(prefix))
    assert len(failed) == 1 and failed[0].startswith("error-"), failed
    again = run(execute_args(str(bad), str(prefix), str(template)), **env)  # a failed rerun replaces it
    assert sorted(os.listdir(prefix)) == failed, again.stderr[-2000:]
    other = run(execute_args(str(bad), str(prefix), str(template)), **{**env, worker: "trainer-worker-1"})
    assert other.returncode == 0 and len(os.listdir(prefix)) == 2  # another worker's document is its own
    good = put_bytes(tmp_path / "inputs.pb", good_inputs())
    proc = run(execute_args(str(good), str(prefix), str(template)), **env)
    left = sorted(os.listdir(prefix))
    ok = proc.returncode == 0 and "outputs.pb" in left and failed[0] not in left and len(left) == 2
    LEDGER.record("distributed error rerun", OUTPUTS if ok else LOST, faults=1, detail=f"{prefix}: {left}")
    assert ok, (left, proc.stderr[-2000:])
