"""The settings registry (``taskbox.settings``): complete, documented, typed, and strict through the real CLI."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2

from helpers import TASKBOX, commit_files, encode_inputs, execute_args, make_template, put, read_error, run, simple
from taskbox import settings
from taskbox.errors import ConfigError, PlatformError

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "taskbox"
NAME = re.compile(r"TASKBOX_[A-Z0-9_]+")
# Settings whose malformed value fails a run through settings.validate(); the platform's are SYSTEM.
CHECKED = [s for s in settings.REGISTRY.values() if s.kind in ("int", "float", "bool") and not s.platform]
BAD = {"int": "64MB", "float": "10s", "bool": "maybe"}


def _names_in_code() -> dict[str, set[str]]:
    """Every ``TASKBOX_*`` string literal in src/taskbox -> the files it is in."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.fullmatch(node.value):
                found.setdefault(node.value, set()).add(str(path.relative_to(SRC)))
    return found


def _registered(literal: str) -> bool:
    """A literal is registered by name, or as the prefix of a family (``TASKBOX_INPUT_`` -> ``..._<NAME>``)."""
    if literal in settings.REGISTRY:
        return True
    return literal.endswith("_") and any(n.startswith(literal + "<") for n in settings.REGISTRY)


def _readme_variable_tables() -> str:
    """The README's tables that have a ``variable`` column (the Environment table, the bundle limits)."""
    tables, current, keep = [], [], False
    for line in (ROOT / "README.md").read_text().splitlines() + [""]:
        if line.startswith("|"):
            if not current:  # the header row names the columns
                keep = "variable" in line
            current.append(line)
        elif current:
            if keep:
                tables.extend(current)
            current = []
    return "\n".join(tables)


# ----------------------------------------------------------------------------- the registry is complete


def test_every_variable_the_code_reads_is_registered():
    found = _names_in_code()
    assert len(found) >= 25, sorted(found)  # the scan works (it finds the names run.py, retry.py... hold)
    missing = {name: files for name, files in found.items() if not _registered(name)}
    assert missing == {}


def test_every_registered_variable_is_in_the_readme_environment_tables():
    tables = _readme_variable_tables()
    assert "TASKBOX_HTTP_ALLOW" in tables and "| failure |" not in tables
    assert [name for name in settings.REGISTRY if f"`{name}`" not in tables] == []


def test_registered_defaults_are_the_ones_the_code_uses():
    from taskbox.bundles.extract import Limits
    from taskbox.entrypoint.execute import DEFAULT_MAX_INPUTS_BYTES
    from taskbox.entrypoint.signals import DEFAULT_GRACE_S
    from taskbox.entrypoint.template import DEFAULT_MAX_TEMPLATE_BYTES
    from taskbox.storage.retry import RetryPolicy

    limits, policy = Limits(), RetryPolicy()
    expected = {
        "TASKBOX_MAX_INPUTS_BYTES": DEFAULT_MAX_INPUTS_BYTES,
        "TASKBOX_MAX_TEMPLATE_BYTES": DEFAULT_MAX_TEMPLATE_BYTES,
        "TASKBOX_TERM_GRACE_S": DEFAULT_GRACE_S,
        "TASKBOX_STORAGE_RETRIES": policy.retries,
        "TASKBOX_STORAGE_RETRY_BUDGET_S": policy.budget_s,
        "TASKBOX_STORAGE_RETRY_BASE_S": policy.base_s,
        "TASKBOX_BUNDLE_MAX_MB": limits.max_compressed,
        "TASKBOX_BUNDLE_MAX_EXTRACTED_MB": limits.max_total,
        "TASKBOX_BUNDLE_MAX_FILES": limits.max_members,
        "TASKBOX_BUNDLE_MAX_RATIO": limits.max_ratio,
    }
    read = {"int": settings.integer, "float": settings.seconds}
    actual = {name: read[settings.REGISTRY[name].kind](name, environ={}) for name in expected}
    assert actual == expected


# ----------------------------------------------------------------------------- the readers


def test_integer_applies_unit_default_and_minimum():
    assert settings.integer("TASKBOX_BUNDLE_MAX_MB", environ={"TASKBOX_BUNDLE_MAX_MB": " 8 "}) == 8 << 20
    assert settings.integer("TASKBOX_BUNDLE_MAX_MB", environ={"TASKBOX_BUNDLE_MAX_MB": ""}) == 512 << 20
    assert settings.integer("TASKBOX_MAX_TEMPLATE_BYTES", 4096, environ={}) == 4096
    with pytest.raises(ConfigError, match=r"TASKBOX_BUNDLE_MAX_FILES='0'.*integer >= 1"):
        settings.integer("TASKBOX_BUNDLE_MAX_FILES", environ={"TASKBOX_BUNDLE_MAX_FILES": "0"})


@pytest.mark.parametrize("value", ["64MB", "1.5", "1e9", "ten"])
def test_malformed_integer_is_invalid_config_naming_the_variable_and_form(value):
    with pytest.raises(ConfigError) as err:
        settings.integer("TASKBOX_MAX_TEMPLATE_BYTES", environ={"TASKBOX_MAX_TEMPLATE_BYTES": value})
    assert err.value.code == "USER:InvalidConfig" and err.value.recoverable is False
    assert f"TASKBOX_MAX_TEMPLATE_BYTES={value!r}" in str(err.value) and "expected an integer" in str(err.value)


@pytest.mark.parametrize("value", ["10s", "nan", "inf", "-1", ""])
def test_seconds_are_finite_and_not_negative(value):
    env = {"TASKBOX_TERM_GRACE_S": value}
    if not value:
        assert settings.seconds("TASKBOX_TERM_GRACE_S", environ=env) == 10.0
        return
    with pytest.raises(ConfigError, match="TASKBOX_TERM_GRACE_S.*number of seconds"):
        settings.seconds("TASKBOX_TERM_GRACE_S", environ=env)


def test_boolean_has_one_truthy_and_one_falsy_set():
    read = [
        settings.boolean("FLYTE_FAIL_ON_ERROR", environ={"FLYTE_FAIL_ON_ERROR": v}) for v in ("1", "TRUE", "yes", "On")
    ]
    assert read == [True] * 4
    read = [
        settings.boolean("FLYTE_FAIL_ON_ERROR", environ={"FLYTE_FAIL_ON_ERROR": v})
        for v in ("0", "False", "no", "off", "")
    ]
    assert read == [False] * 5
    with pytest.raises(ConfigError, match="FLYTE_FAIL_ON_ERROR='maybe'.*one of 0, 1, false"):
        settings.boolean("FLYTE_FAIL_ON_ERROR", environ={"FLYTE_FAIL_ON_ERROR": "maybe"})


def test_string_list_path_and_unregistered_names(monkeypatch, tmp_path):
    assert settings.items("TASKBOX_HTTP_ALLOW", environ={"TASKBOX_HTTP_ALLOW": " 10.0.0.0/8, ,db.local,"}) == (
        "10.0.0.0/8",
        "db.local",
    )
    assert settings.items("TASKBOX_HTTP_ALLOW", environ={}) == ()
    assert settings.string("TASKBOX_LOG_LEVEL", environ={}) == "INFO"
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TASKBOX_CACHE_DIR", "~/cache")  # read at call time, from os.environ
    assert settings.path("TASKBOX_CACHE_DIR") == str(tmp_path / "cache")
    with pytest.raises(KeyError):
        settings.integer("TASKBOX_NOT_A_SETTING", environ={})


@pytest.mark.parametrize("spec", CHECKED, ids=lambda s: s.name)
def test_validate_refuses_a_malformed_value_of_every_checked_setting(spec):
    settings.validate({spec.name: "1"})  # well formed for every kind
    with pytest.raises(ConfigError, match=re.escape(f"{spec.name}={BAD[spec.kind]!r}")):
        settings.validate({spec.name: BAD[spec.kind]})


def test_platform_set_offload_sizes_stay_system_errors():
    from taskbox.literals import offload_limits_from_env

    assert offload_limits_from_env({"_F_L_MIN_SIZE_MB": "2", "_F_L_MAX_SIZE_MB": " "}) == (2 << 20, 1000 << 20)
    settings.validate({"_F_L_MIN_SIZE_MB": "ten"})  # not the user's: offloading reports it
    with pytest.raises(PlatformError, match="_F_L_MAX_SIZE_MB='1GB'"):
        offload_limits_from_env({"_F_L_MIN_SIZE_MB": "1", "_F_L_MAX_SIZE_MB": "1GB"})


# ----------------------------------------------------------------------------- through the real CLI

ECHO = {"n": simple("INTEGER")}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKBOX_MAX_TEMPLATE_BYTES", "64MB"),  # was a retried SYSTEM:ValueError
        ("TASKBOX_MAX_INPUTS_BYTES", "1e9"),  # was a retried SYSTEM:ValueError
        ("TASKBOX_TERM_GRACE_S", "10s"),  # was ignored until a SIGTERM, then silently the default
        ("TASKBOX_STORAGE_RETRIES", "lots"),  # was a warning only
        ("TASKBOX_HTTP_BACKOFF_BASE_S", "fast"),  # was a SYSTEM:ValueError in the http executors only
        ("FLYTE_FAIL_ON_ERROR", "maybe"),  # was read as false
    ],
)
def test_malformed_setting_through_execute_is_a_non_recoverable_invalid_config(tmp_path, name, value):
    template = put(str(tmp_path / "task.pb"), make_template("echo", ECHO, ECHO).SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"n": 1}, ECHO))
    prefix = str(tmp_path / "out")
    proc = run(execute_args(inputs, prefix, template), **{name: value})
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"error.pb"}
    error = read_error(prefix)
    assert (error.code, error.kind) == ("USER:InvalidConfig", errors_pb2.ContainerError.NON_RECOVERABLE)
    assert f"{name}={value!r}" in error.message


def test_malformed_setting_through_run_exits_as_a_user_error(tmp_path):
    out = tmp_path / "out"
    proc = run([TASKBOX, "run", "--executor", "echo", "--input", "greeting=hi", "--outputs", str(out)],
               TASKBOX_STORAGE_RETRY_BUDGET_S="1m")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    error = json.loads((out / "error.json").read_text())
    assert (error["code"], error["recoverable"]) == ("USER:InvalidConfig", False)
    assert "TASKBOX_STORAGE_RETRY_BUDGET_S='1m'" in error["message"]
