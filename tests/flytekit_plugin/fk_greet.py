"""The example plugin's flytekit task (examples/greet-executor) in a workflow; imported inside ``.venv-flytekit`` only.

``TBX_GREET_IMAGE`` names the image the task runs in (the custom executor image the image tests build).
"""

from __future__ import annotations

import os

from flytekit import task, workflow

from taskbox.executors import registry

# Where taskbox-greet is installed (its image, a user's environment) its entry point names the executor; here it is
# only on PYTHONPATH, so it is registered in this process (the task validates its config when it is defined).
registry.register("greet", "taskbox_greet.executor:GreetExecutor", clobber=True)

from taskbox_greet.flytekit_task import GreetTask  # noqa: E402 - after the registration above

greet = GreetTask("greet", greeting="Hi", image=os.environ.get("TBX_GREET_IMAGE"), retries=1)
TASKS = {"greet": greet}


@task
def shout(message: str) -> str:
    return message.upper()


@workflow
def hello(name: str = "Ada") -> str:
    return shout(message=greet(name=name))
