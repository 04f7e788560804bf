"""Prebuilt executors and the plugin API (see :mod:`taskbox.executors.base`)."""

from taskbox.executors.base import Executor, validate_config

__all__ = ["Executor", "validate_config"]
