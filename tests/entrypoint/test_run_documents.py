"""Hostile JSON/YAML documents for ``taskbox run`` (inputs, templates, configs), in-process.

Alias bombs, self-referencing aliases, huge integers and numbers that overflow must each end as the
document's own USER error (``InputError``/``TemplateError``/``ConfigError``), quickly, never as an
untranslated ``ValueError``/``OverflowError`` (a retried SYSTEM error) or a run that never ends.
"""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest
from flyteidl.core import types_pb2

from helpers import list_of, simple
from taskbox.entrypoint import documents, plainio, runspec
from taskbox.errors import ConfigError, InputError, TemplateError
from taskbox.literals import ConversionContext


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """Billion laughs: ``width ** levels`` strings from a few hundred bytes."""
    lines = ['a0: &a0 ["lol"' + ', "lol"' * (width - 1) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 9, width: int = 9) -> str:
    """The same growth through YAML merge keys (``<<``), which PyYAML copies while constructing."""
    lines = ["m0: &m0 {" + ", ".join(f"k{j}: {j}" for j in range(width)) + "}"]
    for i in range(1, levels):
        lines.append(f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * width) + "]}")
    return "\n".join(lines) + "\n"


HUGE_INT = "9" * 5000


@pytest.fixture
def ctx(tmp_path):
    return ConversionContext(raw_output_prefix=str(tmp_path / "raw"), working_dir=str(tmp_path / "work"))


# ----------------------------------------------------------------------------- aliases


@pytest.mark.timeout(20)
@pytest.mark.parametrize("bomb", [alias_bomb, merge_bomb])
def test_alias_bombs_are_refused_while_parsing(bomb):
    text = bomb()
    assert len(text) < 1000
    with pytest.raises(ConfigError, match="expands its aliases"):
        plainio.parse_document(text, what="inputs")


def test_self_referencing_alias_is_refused():
    with pytest.raises(ConfigError, match="refers to itself"):
        plainio.parse_document("a: &a [1, *a]\n")


def test_modest_aliases_and_merge_keys_still_work():
    doc = plainio.parse_document(
        "base: &base {retries: 3, timeout: 10}\nfirst: {<<: *base, name: a}\nsecond: {<<: *base, name: b}\n"
        "xs: &xs [1, 2, 3]\nys: [*xs, *xs]\n"
    )
    assert doc["first"] == {"retries": 3, "timeout": 10, "name": "a"}
    assert doc["ys"] == [[1, 2, 3], [1, 2, 3]]


def test_only_what_aliases_add_is_measured(monkeypatch):
    monkeypatch.setattr(documents, "ALIAS_EXPANSION_BUDGET", 50)
    assert len(plainio.parse_document("xs: [" + ", ".join(["1"] * 200) + "]\n")["xs"]) == 200
    assert plainio.parse_document("xs: &xs [1, 2, 3]\nys: [*xs, *xs, *xs]\n")["ys"][2] == [1, 2, 3]
    with pytest.raises(ConfigError, match="expands its aliases past 50"):
        plainio.parse_document("xs: &xs [" + ", ".join(["1"] * 20) + "]\nys: [*xs, *xs, *xs]\n")
    with pytest.raises(ConfigError, match="expands its aliases past 50"):  # long text counts by its length
        plainio.parse_document("s: &s " + "x" * 40 + "\nys: [*s, *s]\n")


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("what", "error", "call"),
    [
        ("inputs", InputError, lambda ref: runspec.gather_inputs(ref, [], {})),
        ("template", TemplateError, runspec.read_template),
        ("config", ConfigError, lambda ref: plainio.load_document(ref, what="config")),
    ],
)
def test_alias_bomb_files_are_the_documents_user_error(tmp_path, what, error, call):
    path = tmp_path / f"{what}.yaml"
    bomb = alias_bomb()
    path.write_text("type: echo\ncustom:\n" + textwrap.indent(bomb, "  ") if what == "template" else bomb)
    with pytest.raises(error, match="expands its aliases"):
        call(str(path))


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("text", [f"n: {HUGE_INT}\n", f"n: -{HUGE_INT}\n", f"n: 0x{'f' * 5000}\n"])
def test_yaml_integer_past_pythons_digit_limit_is_a_document_error(text):
    with pytest.raises(ConfigError, match="integer"):
        plainio.parse_document(text)


@pytest.mark.parametrize("text", ["d: 0000-01-01\n", "d: 2026-13-01\n", "d: 2026-01-01 00:00:00 +99:00\n"])
def test_yaml_scalars_that_cannot_be_built_are_document_errors(text):
    with pytest.raises(ConfigError):
        plainio.parse_document(text)


def test_json_integer_past_the_digit_limit_names_the_problem_not_the_interpreter():
    with pytest.raises(ConfigError, match="more than 4300 digits") as info:
        plainio.parse_document('{"n": ' + HUGE_INT + "}", yaml_ok=False)
    assert "set_int_max_str_digits" not in info.value.message


@pytest.mark.parametrize(
    ("value", "lt"),
    [
        (float("inf"), simple("FLOAT")),
        (float("nan"), simple("FLOAT")),
        ([1.0, float("-inf")], list_of(simple("FLOAT"))),
        ({"a": {"b": [float("inf")]}}, simple("STRUCT")),
        (10**400, simple("FLOAT")),
        ([10**400], list_of(simple("FLOAT"))),
        (1e20, simple("DURATION")),
        ("1e400", simple("DURATION")),
        (float("inf"), simple("DURATION")),
        (10**30, simple("INTEGER")),
        (HUGE_INT, simple("INTEGER")),
    ],
)
def test_numbers_that_overflow_are_input_errors(value, lt, ctx):
    with pytest.raises(InputError, match="input 'x'"):
        plainio.plain_to_literal("x", value, lt, ctx)


def test_finite_floats_and_durations_still_convert(ctx):
    lit = plainio.plain_to_literal("x", 1e308, simple("FLOAT"), ctx)
    assert lit.scalar.primitive.float_value == 1e308
    lit = plainio.plain_to_literal("x", 86400 * 365, simple("DURATION"), ctx)
    assert lit.scalar.primitive.duration.ToTimedelta() == dt.timedelta(days=365)


def test_template_custom_number_too_large_for_a_double_is_a_template_error(tmp_path):
    path = tmp_path / "task.json"
    path.write_text('{"type": "echo", "custom": {"x": ' + "9" * 400 + "}}")
    with pytest.raises(TemplateError):
        runspec.read_template(str(path))


def test_config_number_too_large_for_a_double_is_a_config_error():
    with pytest.raises(ConfigError):
        runspec.build_template(
            "http",
            {"url": "https://example.test/", "method": "POST", "json_body": {"x": 10**400}},
            None,
            runspec.RawInputs(),
        )


def test_declared_types_are_unchanged():
    assert plainio.parse_type("float") == types_pb2.LiteralType(simple=types_pb2.FLOAT)


def _nested(depth: int) -> dict:
    doc: dict = {"a": 1}
    for _ in range(depth):
        doc = {"a": doc}
    return doc


@pytest.mark.parametrize("depth", [150, 500])
def test_config_nested_deeper_than_a_template_can_carry_is_a_config_error(depth):
    """Past protobuf's 100 levels the template could not be read back; past Python's stack, RecursionError."""
    config = {"url": "https://example.test/", "method": "POST", "json_body": _nested(depth)}
    with pytest.raises(ConfigError, match="nested"):
        runspec.build_template("http", config, None, runspec.RawInputs())


@pytest.mark.parametrize(
    "config",
    [
        {"read_timeout_s": 1e300},
        {"timeout_s": 1e12},
        {"retry": {"max_attempts": 1, "budget_s": 1e300}},
    ],
)
def test_config_durations_past_the_platform_clocks_are_config_errors(config):
    """A timeout no clock can hold (``OverflowError`` once the task runs) is refused while validating."""
    from taskbox.executors.base import validate_config
    from taskbox.executors.registry import load

    with pytest.raises(ConfigError, match="seconds"):
        validate_config(load("http"), {"url": "https://example.test/", "method": "GET", **config})


def test_config_durations_of_weeks_are_fine():
    from taskbox.executors.base import validate_config
    from taskbox.executors.registry import load

    config = validate_config(load("http"), {"url": "https://example.test/", "method": "GET", "timeout_s": 86400 * 30})
    assert config.timeout_s == 86400 * 30


def test_user_data_named_like_a_duration_is_not_a_duration():
    from taskbox.executors.base import validate_config
    from taskbox.executors.registry import load

    body = {"ttl_seconds": 1e300, "items": [{"wait_s": 10**40}]}
    config = validate_config(load("http"), {"url": "https://example.test/", "method": "POST", "json_body": body})
    assert config.json_body == body
