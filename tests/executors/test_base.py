"""Config validation against an executor's pydantic model."""

import pytest

from taskbox.errors import ConfigError
from taskbox.executors import validate_config
from taskbox.executors.echo import EchoExecutor


def test_executor_without_config_accepts_empty_custom():
    assert validate_config(EchoExecutor, {}) is None


def test_executor_without_config_rejects_custom():
    with pytest.raises(ConfigError, match="takes no configuration.*query"):
        validate_config(EchoExecutor, {"query": "x"})


def test_pydantic_config_from_struct_floats_and_versions():
    from taskbox_testplugins.executors import SleepExecutor

    config = validate_config(SleepExecutor, {"seconds": 2.0, "version": 1.0})
    assert (config.seconds, config.version) == (2.0, 1)


def test_pydantic_errors_name_each_field():
    from taskbox_testplugins.executors import SleepExecutor

    with pytest.raises(ConfigError) as info:
        validate_config(SleepExecutor, {"seconds": -1, "typo": 1})
    message = str(info.value)
    assert "seconds: Input should be greater than or equal to 0" in message
    assert "typo: Extra inputs are not permitted" in message
