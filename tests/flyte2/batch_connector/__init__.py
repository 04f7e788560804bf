"""A batch-job connector package, written as flyte-sdk's docs show (``examples/apps/custom_connector_app``).

Installed for real, it would declare its connector for flyte's connector service (and for taskbox's
``flyte-connector`` executor's task-type lookup) with an entry point::

    [project.entry-points."flyte.connectors"]
    batch_job = "batch_connector.connector"

The tests import it from ``tests/flyte2`` (on ``PYTHONPATH``) and add that entry point with a ``.dist-info``.
"""
