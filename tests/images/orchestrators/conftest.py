"""Fixtures of the orchestrator tests (the image fixtures come from tests/images/conftest.py).

``sqlite_image``: the ``sqlite`` variant built for the tests, tagged as the docs name it
(``ghcr.io/taskbox/executor-sqlite:<version>-py<python>``), so a recipe runs with its reference unchanged.
``shop``: a folder with ``data/shop.db`` and ``config/query.json`` (the recipe's config), readable by the
images' user.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from recipe_clients import make_shop, tag_as_documented


@pytest.fixture(scope="session")
def sqlite_image(docker_client: Any, variant_image: Callable[..., str]) -> str:
    return tag_as_documented(docker_client, variant_image("sqlite"))


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_shop(tmp_path / "shop")
