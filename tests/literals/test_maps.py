# ruff: noqa: UP045 - typing.Optional/Union spelled out on purpose

from __future__ import annotations

from typing import Optional

import pytest
from flyteidl.core import interface_pb2, literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError, StorageError
from taskbox.literals import File, literal_map_to_python, python_to_literal_map

INT = types_pb2.LiteralType(simple=types_pb2.INTEGER)
STR = types_pb2.LiteralType(simple=types_pb2.STRING)


def test_round_trip_with_mixed_declarations(ctx):
    variables = {"a": INT, "b": Optional[str], "c": interface_pb2.Variable(type=STR)}
    lm = python_to_literal_map({"a": 1, "b": None, "c": "x"}, variables, ctx)
    assert set(lm.literals) == {"a", "b", "c"}
    assert literal_map_to_python(lm, variables, ctx) == {"a": 1, "b": None, "c": "x"}


def test_empty_interfaces():
    assert python_to_literal_map({}, {}) == literals_pb2.LiteralMap()
    assert literal_map_to_python(literals_pb2.LiteralMap(), {}) == {}


def test_input_errors_name_the_variable(ctx):
    lm = python_to_literal_map({"a": 1}, {"a": int}, ctx)
    with pytest.raises(InputError, match=r"input 'b' \(string\) is missing"):
        literal_map_to_python(lm, {"a": int, "b": STR}, ctx)
    with pytest.raises(InputError, match=r"input 'a' is not declared by the task \(declared: \['z'\]\)"):
        literal_map_to_python(lm, {"z": int}, ctx)
    with pytest.raises(InputError) as err:
        literal_map_to_python(lm, {"a": str}, ctx)
    assert str(err.value) == "input 'a': expected str, got integer literal 1"


def test_output_errors_name_the_output(ctx):
    with pytest.raises(OutputError, match=r"output 'y' \(int\) was not produced"):
        python_to_literal_map({"x": 1}, {"x": int, "y": int}, ctx)
    with pytest.raises(OutputError, match=r"output 'extra' is not declared"):
        python_to_literal_map({"x": 1, "extra": 2}, {"x": int}, ctx)
    with pytest.raises(OutputError) as err:
        python_to_literal_map({"x": [1, "2"]}, {"x": list[int]}, ctx)
    assert str(err.value) == "output 'x': [1]: expected int, got str '2'"
    assert err.value.code == "USER:InvalidOutput" and err.value.recoverable is False


def test_storage_errors_keep_their_class_and_gain_the_name(ctx, tmp_path, monkeypatch):
    (tmp_path / "f.txt").write_text("x")

    def broken_upload(*args, **kwargs):
        raise StorageError("bucket unavailable")

    monkeypatch.setattr("taskbox.storage.upload", broken_upload)
    with pytest.raises(StorageError) as err:
        python_to_literal_map({"f": File(str(tmp_path / "f.txt"))}, {"f": File}, ctx)
    assert type(err.value) is StorageError
    assert str(err.value) == "output 'f': bucket unavailable" and err.value.recoverable is True
