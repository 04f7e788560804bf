"""The flyte 2 side of the a0 cold-start bench: a trivial task, run by flyte's own ``a0``."""

import flyte

env = flyte.TaskEnvironment("bench")


@env.task
async def echo(x: int) -> int:
    return x
