"""The peer's trivial task for the cold-start benchmark: flytekit's equivalent of taskbox's echo."""

from flytekit import task


@task
def echo(x: int) -> int:
    return x
