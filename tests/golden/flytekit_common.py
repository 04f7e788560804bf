"""Shared by the ``make_*.py`` golden scripts; runs in flytekit's environment only (imports nothing from taskbox).

The scripts are run as ``python tests/golden/make_<x>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

from typing import Any


def serialization_settings() -> Any:
    """The ``SerializationSettings`` every golden template is serialized with (a fixed image, project, version)."""
    from flytekit.configuration import Image, ImageConfig, SerializationSettings

    return SerializationSettings(
        image_config=ImageConfig(
            default_image=Image(name="default", fqn="cr.flyte.org/flyteorg/flytekit", tag="golden")
        ),
        project="golden",
        domain="development",
        version="v1",
    )
