"""What a decoded input carried beyond its value (taskbox.literals.origins): union variants, hashes, metadata.

The golden corpus (test_passthrough_golden.py) shows values passed through whole; these cases pin the
rules around it: a changed value loses what it carried, a union variant is a preference that survives
changes, immutable values are matched by input name only, and nothing is remembered without Origins.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import OutputError
from taskbox.literals import ConversionContext
from taskbox.literals.maps import (
    encoded_map_to_python,
    literal_map_to_python,
    python_to_encoded_map,
    python_to_literal_map,
)
from taskbox.literals.origins import Origins

FIXTURES = Path(__file__).resolve().parents[1] / "golden" / "passthrough"
CASES = json.loads((FIXTURES / "manifest.json").read_text())["cases"]


def _fixture(name: str) -> tuple[types_pb2.LiteralType, bytes]:
    entry = CASES[name]
    return (
        types_pb2.LiteralType.FromString((FIXTURES / entry["type"]).read_bytes()),
        (FIXTURES / entry["input"]).read_bytes(),
    )


@pytest.fixture
def octx(tmp_path):
    return ConversionContext(str(tmp_path / "raw"), str(tmp_path / "work"), origins=Origins())


def _through(ctx, inputs: dict[str, tuple[types_pb2.LiteralType, bytes]], body, outputs=None):
    """Decode ``inputs`` as a task attempt does, run ``body`` on the values, encode the declared outputs."""
    declared_inputs = {n: lt for n, (lt, _) in inputs.items()}
    values = encoded_map_to_python({n: data for n, (_, data) in inputs.items()}, declared_inputs, ctx)
    produced = body(values)
    declared = outputs or {n: lt for n, (lt, _) in inputs.items()}
    return dict(python_to_encoded_map(produced, declared, ctx).to_message().literals)


def test_a_changed_struct_keeps_its_union_variant(octx):
    lt, data = _fixture("union_dataclass_pydantic")  # Union[Leaf, PLeaf], same fields: only the origin tells

    def change(values):
        values["x"]["label"] = "changed"
        return values

    out = _through(octx, {"x": (lt, data)}, change)["x"]
    original = literals_pb2.Literal.FromString(data)
    assert out.scalar.union.type == original.scalar.union.type  # still the pydantic variant
    assert out.scalar.union.value != original.scalar.union.value


def test_a_fresh_dict_with_the_same_fields_as_two_variants_is_refused(octx):
    lt, data = _fixture("union_dataclass_pydantic")
    with pytest.raises(OutputError, match="ambiguous"):
        _through(octx, {"x": (lt, data)}, lambda values: {"x": dict(values["x"])})


def test_a_fresh_dict_picks_the_variant_whose_fields_it_has(octx):
    lt, data = _fixture("union_structs_first")  # Union[Leaf, Branch]
    first = _through(octx, {"x": (lt, data)}, lambda values: {"x": {"value": 9}})["x"]
    assert first.scalar.union.type.metadata.fields["title"].string_value == "Leaf"
    second = _through(octx, {"x": (lt, data)}, lambda values: {"x": {"name": "n", "leaves": []}})["x"]
    assert second.scalar.union.type.metadata.fields["title"].string_value == "Branch"


def test_without_origins_a_union_of_look_alike_structs_is_ambiguous(tmp_path):
    ctx = ConversionContext(str(tmp_path / "raw"), str(tmp_path / "work"))
    lt, data = _fixture("union_dataclass_pydantic")
    with pytest.raises(OutputError, match="ambiguous"):
        _through(ctx, {"x": (lt, data)}, lambda values: values)


def test_a_changed_value_loses_its_hash(octx):
    lt, data = _fixture("hashed_dict")

    def change(values):
        values["x"]["c"] = 3
        return values

    out = _through(octx, {"x": (lt, data)}, change)["x"]
    assert out.hash == ""
    assert set(out.map.literals) == {"a", "b", "c"}


def test_a_container_with_a_changed_element_loses_every_hash(octx):
    lt, data = _fixture("hashed_elements")
    assert all(item.hash for item in literals_pb2.Literal.FromString(data).collection.literals)

    def change(values):
        values["x"][0] += 1
        return values

    out = _through(octx, {"x": (lt, data)}, change)["x"]
    assert [item.hash for item in out.collection.literals] == ["", "", ""]


def test_hashed_elements_do_not_leak_into_other_values(octx):
    """The ints 1, 2, 3 carry hashes in one input; the same ints elsewhere must not get them."""
    lt, data = _fixture("hashed_elements")
    ints = types_pb2.LiteralType(map_value_type=types_pb2.LiteralType(simple=types_pb2.INTEGER))
    plain = literals_pb2.Literal()
    for key, number in (("one", 1), ("two", 2)):
        plain.map.literals[key].scalar.primitive.integer = number
    out = _through(octx, {"x": (lt, data), "y": (ints, plain.SerializeToString())}, lambda values: values)
    assert out["x"].SerializeToString(deterministic=True) == data
    assert [item.hash for item in out["y"].map.literals.values()] == ["", ""]


def test_an_immutable_value_keeps_its_hash_under_its_own_name_only(octx):
    lt, data = _fixture("hashed_int")
    out = _through(octx, {"x": (lt, data)}, lambda values: {"x": values["x"], "y": values["x"]}, {"x": lt, "y": lt})
    assert out["x"].hash == "int-42"
    assert out["y"].hash == ""


def test_metadata_is_kept_like_the_hash(octx):
    literal = literals_pb2.Literal(metadata={"owner": "team-a", "format": "v2"})
    literal.collection.literals.add().scalar.primitive.string_value = "a"
    lt = types_pb2.LiteralType(collection_type=types_pb2.LiteralType(simple=types_pb2.STRING))
    out = _through(octx, {"x": (lt, literal.SerializeToString())}, lambda values: values)["x"]
    assert dict(out.metadata) == {"owner": "team-a", "format": "v2"}


def test_the_literal_map_api_keeps_them_too(octx):
    lt, data = _fixture("hashed_str")
    lm = literals_pb2.LiteralMap()
    lm.literals["x"].ParseFromString(data)
    values = literal_map_to_python(lm, {"x": lt}, octx)
    assert python_to_literal_map(values, {"x": lt}, octx).literals["x"] == lm.literals["x"]


def test_without_origins_nothing_is_kept(tmp_path):
    ctx = ConversionContext(str(tmp_path / "raw"), str(tmp_path / "work"))
    lt, data = _fixture("hashed_dict")
    out = _through(ctx, {"x": (lt, data)}, lambda values: values)["x"]
    assert out.hash == ""
