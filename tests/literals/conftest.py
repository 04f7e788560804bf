"""Fixtures for the literal engine tests: an isolated conversion context and the hypothesis profile."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from taskbox.literals import ConversionContext

# Deterministic property tests: the same examples on every run and in CI, no deadline (no timing asserts).
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=150,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# make fuzz: random examples, many more of them.
settings.register_profile("fuzz", parent=settings.get_profile("ci"), derandomize=False, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def ctx(tmp_path):
    """A conversion context whose raw-output prefix and working directory live under ``tmp_path``."""
    return ConversionContext(raw_output_prefix=str(tmp_path / "raw"), working_dir=str(tmp_path / "work"))
