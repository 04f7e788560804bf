"""Argument handling of ``taskbox execute``: placeholders, ``--``, usage errors."""

import subprocess
import sys

import pytest

from taskbox.entrypoint import cli


@pytest.mark.parametrize(
    "value",
    ['""', "", "  ", "{{.prevCheckpointPrefix}}", "{{ .rawOutputDataPrefix }}", "{{.checkpointOutputPrefix}}"],
)
def test_absent_spellings(value):
    assert cli.normalize(value) is None


@pytest.mark.parametrize("value", ["s3://b/k", "/tmp/x", "{{not closed"])
def test_real_values_are_kept(value):
    assert cli.normalize(value) == value


def test_resolver_args_after_double_dash_may_look_like_options():
    opts, rest = cli._split_resolver_args(["--inputs", "a", "--resolver", "r", "--", "--weird", "x"])
    assert opts == ["--inputs", "a", "--resolver", "r"]
    assert rest == ["--weird", "x"]


def test_missing_required_flag_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "taskbox", "execute", "--inputs", "x"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--output-prefix" in proc.stderr


def test_placeholder_for_required_flag_is_a_usage_error():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskbox",
            "execute",
            "--inputs",
            "{{.input}}",
            "--output-prefix",
            "/tmp/o",
            "--resolver",
            "taskbox.template",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "need real values" in proc.stderr


def test_unknown_command():
    proc = subprocess.run([sys.executable, "-m", "taskbox", "frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown command" in proc.stderr


FLYTE_ARGS = [
    "--inputs",
    "s3://b/in/inputs.pb",
    "--output-prefix",
    "s3://b/out/0",
    "--raw-output-data-prefix",
    "s3://b/raw",
    "--checkpoint-path",
    "{{.checkpointOutputPrefix}}",
    "--prev-checkpoint",
    '""',
    "--resolver",
    "taskbox.template",
]


def _argparse(options):
    return vars(cli._execute_parser().parse_args(options))


def test_fast_path_parses_flytes_serialized_args_like_argparse():
    fast = cli.fast_parse(FLYTE_ARGS)
    assert fast is not None
    assert vars(fast) == _argparse(FLYTE_ARGS)


@pytest.mark.parametrize(
    "options",
    [
        ["--inputs=a", "--output-prefix=b", "--resolver=r", "--fail-on-error"],
        ["--inputs", "a", "--inputs", "b", "--output-prefix", "o", "--resolver", "r"],  # last one wins
        [
            "--resolver",
            "r",
            "--dynamic-addl-distro",
            "s3://x",
            "--dynamic-dest-dir",
            ".",
            "--inputs",
            "i",
            "--output-prefix",
            "o",
        ],
        ["--inputs", "", "--output-prefix", "o", "--resolver", "r"],
    ],
)
def test_fast_path_agrees_with_argparse(options):
    fast = cli.fast_parse(options)
    assert fast is not None
    assert vars(fast) == _argparse(options)


@pytest.mark.parametrize(
    "options",
    [
        ["--inp", "a", "--output-prefix", "o", "--resolver", "r"],  # abbreviation: argparse's call
        ["--inputs", "a", "--output-prefix", "o"],  # missing --resolver: argparse reports it
        ["--inputs", "--output-prefix", "o", "--resolver", "r"],  # missing value
        ["-h"],
        ["--inputs", "a", "--output-prefix", "o", "--resolver", "r", "extra"],
        ["--fail-on-error=yes", "--inputs", "a", "--output-prefix", "o", "--resolver", "r"],
    ],
)
def test_fast_path_defers_everything_else_to_argparse(options):
    assert cli.fast_parse(options) is None


# ------------------------------------------------------------------ taskbox inspect (issue 22 item 3)


def _messages():
    from flyteidl.core import errors_pb2, literals_pb2

    from helpers import make_template, simple

    template = make_template("echo", {"x": simple("INTEGER")}, {"x": simple("INTEGER")}, custom={"a": [1, "b"]})
    literals = literals_pb2.LiteralMap()
    literals.literals["x"].scalar.primitive.integer = 42
    literals.literals["s"].scalar.primitive.string_value = "hi"
    error = errors_pb2.ErrorDocument()
    error.error.code, error.error.message = "USER:Boom", "it broke"
    literal = literals_pb2.Literal()
    literal.collection.literals.add().scalar.primitive.float_value = 1.5
    return {"template": template, "literals": literals, "error": error, "literal": literal}


def inspect(path, *extra):
    return subprocess.run([sys.executable, "-m", "taskbox", "inspect", str(path), *extra], capture_output=True,
                          text=True)  # fmt: skip


# Each kind under names that say nothing, and under the names of the other kinds.
NAMES = ["data.bin", "task.pb", "inputs.pb", "outputs.pb", "error.pb", "x_offloaded_metadata.pb"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["template", "literals", "error", "literal"])
def test_inspect_tells_the_kind_from_the_bytes(tmp_path, kind, name):
    import json

    from google.protobuf.json_format import MessageToDict

    message = _messages()[kind]
    (tmp_path / name).write_bytes(message.SerializeToString())
    proc = inspect(tmp_path / name)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == MessageToDict(message)


def _hostile(tmp_path):
    import os
    import random

    template = _messages()["template"].SerializeToString()
    rng = random.Random(22)
    files = {
        "random.pb": os.urandom(512),
        "seeded-random": bytes(rng.getrandbits(8) for _ in range(300)),
        "truncated-template.pb": template[: len(template) // 2 + 1],
        "inputs.json": b'{"x": 42}',
        "outputs.pb": b"x: 42\nname: hi\n",  # YAML under a protobuf name
        "empty.pb": b"",
        "error.pb": b"\xff" * 64,
        "nested.pb": b"\x0a\x02" * 20 + b"\x0a\x80\x80\x80\x80\x10",  # lengths past the end
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "a-directory").mkdir()
    return [*files, "a-directory", "missing.pb"]


def test_inspect_never_prints_a_traceback(tmp_path):
    for name in _hostile(tmp_path):
        proc = inspect(tmp_path / name)
        assert proc.returncode in (1, 2), (name, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == "", (name, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, (name, proc.stderr)
        assert proc.stderr.startswith("taskbox inspect: "), (name, proc.stderr)
        if name not in ("a-directory", "missing.pb"):
            assert proc.returncode == 2 and "--type" in proc.stderr, (name, proc.stderr)
        for kind in ("template", "literals", "error", "literal"):  # told the type, still one line at worst
            forced = inspect(tmp_path / name, "--type", kind)
            assert "Traceback" not in forced.stderr, (name, kind, forced.stderr)


def test_inspect_with_type_and_an_empty_inputs_file(tmp_path):
    (tmp_path / "inputs.pb").write_bytes(b"")  # propeller may write 0 bytes: an empty LiteralMap
    proc = inspect(tmp_path / "inputs.pb")
    assert (proc.returncode, proc.stdout.strip()) == (0, "{}"), proc.stderr
    (tmp_path / "weird").write_bytes(_messages()["literals"].SerializeToString())
    proc = inspect(tmp_path / "weird", "--type", "literals")
    assert proc.returncode == 0 and '"hi"' in proc.stdout, proc.stderr
    proc = inspect(tmp_path / "weird", "--type", "literal")  # obeyed: the bytes are no Literal
    assert proc.returncode == 1 and "is not a serialized Literal" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = inspect(tmp_path / "weird", "--type", "nope")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
