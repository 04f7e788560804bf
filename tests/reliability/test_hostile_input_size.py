"""The hostile input corpus: an ``inputs.pb`` over the default cap is refused before it costs memory.

Why: issue 14 item 16. Converting ``inputs.pb`` costs up to 10x its size + 150 MiB of memory (measured by
``test_resource_bounds.py::test_inputs_memory_is_a_small_multiple_of_their_size``), so the default cap
(:data:`taskbox.entrypoint.execute.DEFAULT_MAX_INPUTS_BYTES`) is the largest file whose conversion fits
a 2 GiB pod. A file over it must end in ``USER:InputTooLarge`` (not retried) before it is read, never in
an OOM kill without an error document (the file is sparse: it takes no disk and nothing reads it). So
must a file under the cap whose values would cost more than that bound: mostly empty lists
(``taskbox.literals.wire.containers_allowed``).

Every run is recorded in the reliability ledger (family ``hostile inputs.pb``).
"""

from __future__ import annotations

from flyteidl.core import literals_pb2

from helpers import execute_args, list_of, run, simple
from reliability.hostile import _field, _length_delimited, echo_template, expect_error, map_entry
from taskbox.entrypoint.execute import DEFAULT_MAX_INPUTS_BYTES

MIB = 1024 * 1024
POD_MIB = 2048
#: The smallest file whose conversion may need more than a 2 GiB pod under the measured bound.
OVER_A_POD = ((POD_MIB - 150) // 10 + 1) * MIB


def test_the_default_cap_keeps_the_memory_bound_inside_a_2_gib_pod():
    """10x the largest accepted file + 150 MiB (the measured bound) fits 2 GiB with 256 MiB to spare."""
    assert 10 * DEFAULT_MAX_INPUTS_BYTES / MIB + 150 <= POD_MIB - 256


def test_inputs_too_large_for_a_pod_are_refused_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKBOX_MAX_INPUTS_BYTES", raising=False)
    template, inputs, prefix = tmp_path / "task.pb", tmp_path / "inputs.pb", str(tmp_path / "out")
    template.write_bytes(echo_template())
    with open(inputs, "wb") as fh:
        fh.truncate(OVER_A_POD)  # sparse
    proc = run(execute_args(str(inputs), prefix, str(template)))
    expect_error(
        "hostile inputs.pb",
        proc,
        prefix,
        "USER:InputTooLarge",
        ("LiteralMap file is too large", str(DEFAULT_MAX_INPUTS_BYTES), "TASKBOX_MAX_INPUTS_BYTES"),
    )


def test_inputs_of_mostly_empty_lists_are_refused(tmp_path):
    """4 bytes on the wire, ~64 bytes as a Python list: 12 MiB of them would take ~200 MiB; refused instead."""
    empty = literals_pb2.Literal()
    empty.collection.SetInParent()
    chunk = literals_pb2.LiteralCollection(literals=[empty] * 1000).SerializeToString()
    nested = _length_delimited(_field(literals_pb2.Literal, "collection"), chunk * (12 * MIB // len(chunk)))
    types = {"xs": list_of(list_of(simple("INTEGER")))}
    template, inputs, prefix = tmp_path / "task.pb", tmp_path / "inputs.pb", str(tmp_path / "out")
    template.write_bytes(echo_template(types))
    inputs.write_bytes(map_entry("xs", nested))
    proc = run(execute_args(str(inputs), prefix, str(template)))
    expect_error("hostile inputs.pb", proc, prefix, "USER:InputTooLarge", ("input 'xs'", "lists and maps", "memory"))
