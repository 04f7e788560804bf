"""Flyte 2's ``a0`` command line: built args parse back to the same options; flyte's spellings are accepted."""

from __future__ import annotations

import base64

import pytest
from flyteidl.core import errors_pb2, tasks_pb2

from helpers import TASKBOX, run
from taskbox.entrypoint.cmdline import UsageError
from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, a0_args, decode_template, encode_template, parse_a0

FLYTE_RESOLVER = "flyte._internal.resolvers.default.DefaultTaskResolver"


def _filled(args: list[str]) -> list[str]:
    values = {"{{.input}}": "s3://b/in/inputs.pb", "{{.outputPrefix}}": "s3://b/out", "{{.runName}}": "r1"}
    return [values.get(arg, arg) for arg in args]


@pytest.mark.parametrize(
    ("resolver", "resolver_args", "bundle"),
    [
        (PREBUILT_RESOLVER, ["template", encode_template(b"\x0a\x00")], None),
        (PREBUILT_RESOLVER, ["template", encode_template(b""), "executor", "mypkg.mod:Greet"], None),
        (FLYTE_RESOLVER, ["mod", "wf", "instance", "add"], None),
        (FLYTE_RESOLVER, ["mod", "wf", "instance", "add"], "s3://b/fast123.tar.gz"),
    ],
)
def test_built_args_parse_back(resolver, resolver_args, bundle):
    args = a0_args(resolver, resolver_args, version="v7", bundle=bundle, dest="/root")
    assert args[0] == "a0"
    opts = parse_a0(_filled(args)[1:], environ={})
    assert (opts.inputs, opts.outputs_path, opts.version) == ("s3://b/in/inputs.pb", "s3://b/out", "v7")
    assert (opts.resolver, opts.resolver_args) == (resolver, resolver_args)
    assert opts.run_name == "r1"
    # unsubstituted placeholders are absent
    assert opts.raw_data_path is None and opts.checkpoint_path is None and opts.name is None
    assert opts.run_start_time is None
    assert (opts.tgz, opts.dest) == ((bundle, "/root") if bundle else (None, None))


def test_flyte_spellings_short_forms_equals_and_env_fallbacks():
    env = {
        "ACTION_NAME": "a9",
        "RUN_NAME": "r9",
        "_U_RUN_BASE": "s3://b/base",
        "FLYTE_INTERNAL_EXECUTION_PROJECT": "p",
        "FLYTE_INTERNAL_EXECUTION_DOMAIN": "d",
        "_U_ORG_NAME": "o",
    }
    argv = ["-i", "in.pb", "--outputs-path=out", "-v", "v1", "-r", "raw", "-c", "cp", "-p", "prev",
            "--name", "{{.actionName}}", "--image-cache", "abc", "--debug", "false",
            "--resolver", "x.Y", "--", "mod", "m"]  # fmt: skip
    opts = parse_a0(argv, environ=env)
    assert (opts.inputs, opts.outputs_path, opts.raw_data_path) == ("in.pb", "out", "raw")
    assert (opts.checkpoint_path, opts.prev_checkpoint) == ("cp", "prev")
    assert (opts.name, opts.run_name, opts.run_base_dir) == ("a9", "r9", "s3://b/base")
    assert (opts.project, opts.domain, opts.org) == ("p", "d", "o")
    assert (opts.image_cache, opts.debug) == ("abc", "false")
    assert (opts.resolver, opts.resolver_args) == ("x.Y", ["mod", "m"])  # a leading "--" is dropped
    assert opts.argv == argv


def test_resolver_args_may_look_like_options():
    opts = parse_a0(["-i", "i", "-o", "o", "--resolver", "x.Y", "--inputs", "not-an-option"], environ={})
    assert opts.inputs == "i"
    assert opts.resolver_args == ["--inputs", "not-an-option"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-o", "out"], "--inputs is required"),
        (["-i", "in"], "--outputs-path is required"),
        (["-i", "in", "-o", "out", "--bogus", "x"], "no such option: --bogus"),
        (["-i", "in", "-o", "out", "--bogus=x"], "no such option: --bogus"),
        (["-i", "in", "-o", "out", "stray"], "unexpected argument 'stray'"),
        (["-i", "in", "-o"], "needs a value"),
        (["-i", "in", "-o", "out", "--resolver"], "--resolver needs a value"),
    ],
)
def test_malformed_command_lines(argv, message):
    with pytest.raises(UsageError, match=message):
        parse_a0(argv, environ={})


def test_template_encoding_round_trip_and_hostile_text():
    template = tasks_pb2.TaskTemplate(type="sqlite")
    template.custom.update({"query_template": "SELECT {{ .inputs.n }}"})
    data = template.SerializeToString()
    encoded = encode_template(data)
    assert "{{" not in encoded and "/" not in encoded and "+" not in encoded
    assert decode_template(encoded, limit=1 << 20) == data
    with pytest.raises(ValueError, match="starts with"):
        decode_template(base64.b64encode(data).decode(), limit=1 << 20)
    with pytest.raises(ValueError, match="base64"):
        decode_template("tbx1:ab$cd", limit=1 << 20)
    with pytest.raises(ValueError, match="over 10 bytes"):
        decode_template(encode_template(b"x" * 100), limit=10)


def test_malformed_a0_line_exits_2_and_still_writes_error_pb(tmp_path):
    proc = run([TASKBOX, "a0", "-i", "in.pb", "-o", str(tmp_path), "--bogus", "1"])
    assert proc.returncode == 2
    assert "no such option: --bogus" in proc.stderr
    document = errors_pb2.ErrorDocument.FromString((tmp_path / "error.pb").read_bytes())
    assert document.error.code == "InvalidConfig"
    assert document.error.kind == errors_pb2.ContainerError.NON_RECOVERABLE
    assert not document.error.HasField("timestamp") and not document.error.worker  # v2 has neither field


def test_a0_without_a_resolver_or_pkl_is_a_usage_error(tmp_path):
    proc = run([TASKBOX, "a0", "-i", "in.pb", "-o", str(tmp_path), "-v", "v1"])
    assert proc.returncode == 2
    assert "--resolver CLASS" in proc.stderr
    document = errors_pb2.ErrorDocument.FromString((tmp_path / "error.pb").read_bytes())
    assert document.error.code == "InvalidConfig" and "--resolver" in document.error.message


def test_a0_is_a_command_and_an_image_entrypoint_prefix(tmp_path):
    for prefix in (["a0"], ["taskbox", "a0"]):
        proc = run([TASKBOX, *prefix, "-o", str(tmp_path)])
        assert proc.returncode == 2 and "--inputs is required" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("resolver_args", "message"),
    [
        (["template"], "takes 'template <encoded>"),
        (["executor", "echo"], "got keys"),
        (["template", "tbx1:AAAA", "extra", "x"], "got keys"),
        (["template", "not-encoded"], "cannot be read"),
        (["template", "tbx1:" + "A" * 8], "cannot be read"),  # base64 of zero bytes... not a TaskTemplate
    ],
)
def test_bad_prebuilt_resolver_args_are_user_errors(tmp_path, resolver_args, message):
    (tmp_path / "inputs.pb").write_bytes(b"")
    out = tmp_path / "out"
    args = a0_args(PREBUILT_RESOLVER, resolver_args, version="v1")
    args = [{"{{.input}}": str(tmp_path / "inputs.pb"), "{{.outputPrefix}}": str(out)}.get(a, a) for a in args]
    proc = run([TASKBOX, *args])
    assert proc.returncode == 0, proc.stderr
    document = errors_pb2.ErrorDocument.FromString((out / "error.pb").read_bytes())
    assert document.error.code == "InvalidTemplate", document.error.code
    assert message in document.error.message, document.error.message
    assert not (out / "outputs.pb").exists()


def test_a0_help_names_the_flags_and_the_prebuilt_resolver():
    proc = run([TASKBOX, "a0", "--help"])
    assert proc.returncode == 0
    assert "--outputs-path" in proc.stdout and PREBUILT_RESOLVER in proc.stdout
