"""Lazy imports: the registry and the executor module do not import httpx."""

import subprocess
import sys


def test_registry_and_executor_do_not_import_httpx():
    code = (
        "import sys, taskbox.executors.registry, taskbox.executors.http, taskbox.authoring; "
        "assert 'httpx' not in sys.modules, 'httpx imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
