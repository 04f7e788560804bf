from __future__ import annotations

import re

import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError, PlatformError, StorageNotFound
from taskbox.literals import TypeEngine, literal_map_to_python, offload_limits_from_env, offload_literals
from taskbox.literals.offload import compute_hash_string

INT_LIST = types_pb2.LiteralType(collection_type=types_pb2.LiteralType(simple=types_pb2.INTEGER))


def outputs() -> literals_pb2.LiteralMap:
    lm = literals_pb2.LiteralMap()
    lm.literals["small"].CopyFrom(TypeEngine.to_literal(1, int))
    lm.literals["big"].CopyFrom(TypeEngine.to_literal(list(range(1000)), list[int]))
    return lm


def test_large_literals_are_offloaded_with_flytekits_layout(tmp_path):
    lm = outputs()
    big = lm.literals["big"]
    out = offload_literals(lm, str(tmp_path / "out"), min_bytes=1000, max_bytes=10**9)
    assert out.literals["small"] == lm.literals["small"]
    ref = out.literals["big"]
    assert ref.WhichOneof("value") == "offloaded_metadata"
    meta = ref.offloaded_metadata
    assert meta.uri == str(tmp_path / "out" / "big_offloaded_metadata.pb")
    assert meta.size_bytes == big.ByteSize()
    assert meta.inferred_type == INT_LIST
    assert ref.hash == compute_hash_string(big)
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", ref.hash)
    stored = literals_pb2.Literal()
    stored.ParseFromString((tmp_path / "out" / "big_offloaded_metadata.pb").read_bytes())
    assert stored == big
    assert lm.literals["big"] == big  # input untouched


def test_declared_types_and_existing_hashes_are_kept(tmp_path):
    lm = outputs()
    lm.literals["big"].hash = "user-hash"
    declared = {"big": list[int], "small": types_pb2.LiteralType(simple=types_pb2.INTEGER)}
    out = offload_literals(lm, str(tmp_path), min_bytes=0, max_bytes=10**9, variables=declared)
    assert out.literals["big"].hash == "user-hash"
    assert out.literals["big"].offloaded_metadata.inferred_type == INT_LIST
    assert out.literals["small"].offloaded_metadata.inferred_type.simple == types_pb2.INTEGER


def test_too_large_literal_is_refused(tmp_path):
    with pytest.raises(OutputError, match=r"output 'big' is too large to be offloaded"):
        offload_literals(outputs(), str(tmp_path), min_bytes=10, max_bytes=1000)


def test_offloaded_inputs_are_fetched_before_decoding(tmp_path):
    out = offload_literals(outputs(), str(tmp_path), min_bytes=1000, max_bytes=10**9)
    values = literal_map_to_python(out, {"small": int, "big": INT_LIST})
    assert values == {"small": 1, "big": list(range(1000))}
    nested = literals_pb2.Literal()
    nested.collection.literals.append(out.literals["big"])
    assert TypeEngine.to_python_value(nested, list[list[int]]) == [list(range(1000))]


def test_broken_offloaded_references(tmp_path):
    ref = literals_pb2.Literal()
    ref.offloaded_metadata.uri = str(tmp_path / "missing.pb")
    with pytest.raises(StorageNotFound):
        TypeEngine.to_python_value(ref, int)
    (tmp_path / "junk.pb").write_bytes(b"\xff\xff\xff")
    ref.offloaded_metadata.uri = str(tmp_path / "junk.pb")
    with pytest.raises(InputError, match="not a serialized Literal"):
        TypeEngine.to_python_value(ref, int)
    with pytest.raises(InputError, match="no uri"):
        TypeEngine.to_python_value(
            literals_pb2.Literal(offloaded_metadata=literals_pb2.LiteralOffloadedMetadata()), int
        )


def test_limits_from_env():
    assert offload_limits_from_env({}) is None
    assert offload_limits_from_env({"_F_L_MIN_SIZE_MB": "2"}) == (2 * 1024 * 1024, 1000 * 1024 * 1024)
    assert offload_limits_from_env({"_F_L_MIN_SIZE_MB": "1", "_F_L_MAX_SIZE_MB": "5"}) == (1 << 20, 5 << 20)
    with pytest.raises(PlatformError, match="offloading size") as err:
        offload_limits_from_env({"_F_L_MIN_SIZE_MB": "ten"})
    assert err.value.recoverable is False


@pytest.mark.parametrize(("min_bytes", "declared"), [(1000, None), (0, {"big": list[int], "small": int})])
def test_encoded_outputs_are_offloaded_as_messages_are(tmp_path, min_bytes, declared):
    """The entrypoint's serialized outputs (taskbox.literals.wire) offload to the same map and files."""
    from taskbox.literals.offload import offload_encoded
    from taskbox.literals.wire import EncodedLiteralMap

    lm = outputs()
    encoded = EncodedLiteralMap({k: v.SerializeToString(deterministic=True) for k, v in lm.literals.items()})
    a, b = tmp_path / "a", tmp_path / "b"
    want = offload_literals(lm, str(a), min_bytes=min_bytes, max_bytes=10**9, variables=declared)
    got = offload_encoded(encoded, str(b), min_bytes=min_bytes, max_bytes=10**9, variables=declared)
    got_map = got.to_message()
    for literal in want.literals.values():
        if literal.HasField("offloaded_metadata"):
            literal.offloaded_metadata.uri = literal.offloaded_metadata.uri.replace(str(a), str(b))
    assert got_map == want
    assert sorted(p.name for p in b.iterdir()) == sorted(p.name for p in a.iterdir())
    for path in a.iterdir():
        assert (b / path.name).read_bytes() == path.read_bytes()
    with pytest.raises(OutputError, match=r"output 'big' is too large to be offloaded"):
        offload_encoded(encoded, str(b), min_bytes=10, max_bytes=1000)
