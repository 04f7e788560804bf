"""make test's parallel run keeps the tests that must not compete together (tests/conftest.py XDIST_GROUPS)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root_conftest(pytestconfig: pytest.Config) -> ModuleType:
    """The tests/conftest.py module as pytest loaded it."""
    return pytestconfig.pluginmanager.get_plugin(str(ROOT / "tests" / "conftest.py"))


def test_every_group_prefix_names_a_test_path(root_conftest):
    # A renamed or moved module would silently leave its group and run beside the others.
    for prefix in root_conftest.XDIST_GROUPS:
        assert (ROOT / prefix).exists(), prefix


def test_node_ids_map_to_their_group(root_conftest):
    group_of = root_conftest.xdist_group_of
    assert group_of("tests/images/test_variants.py::test_image_metadata[sql]") == "images"
    assert group_of("tests/reliability/test_kill_rerun.py::test_sigterm_then_rerun[upload]") == "bounds"
    assert group_of("tests/reliability/test_resource_bounds.py::test_x") == "bounds"
    assert group_of("tests/reliability/test_storage_faults.py::test_x[sql]") is None
    assert group_of("tests/literals/test_primitives.py::test_int") is None
