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
