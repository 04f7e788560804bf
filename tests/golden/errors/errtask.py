"""The python task of tests/golden/make_error_fixtures.py (taskbox's test imports ``task`` from taskbox instead)."""

from flytekit import task


@task
def t(a: int, b: str) -> str:
    return f"{a}{b}"
