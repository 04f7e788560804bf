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
        [sys.executable, "-m", "taskbox", "execute", "--inputs", "{{.input}}", "--output-prefix", "/tmp/o",
         "--resolver", "taskbox.template"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "need real values" in proc.stderr


def test_unknown_command():
    proc = subprocess.run([sys.executable, "-m", "taskbox", "frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown command" in proc.stderr
