"""The ``greet`` executor as a flytekit task: ``GreetTask`` (needs ``taskbox[flytekit]``; the image does not).

Why a module of its own: the executor image (``taskbox image build --executor``) has no flytekit, and taskbox
loads ``taskbox_greet.executor`` there through the entry point; nothing imports this module in the image. A
workflow author installs ``taskbox-greet[flytekit]`` and imports ``GreetTask`` from here.

Example::

    from flytekit import workflow
    from taskbox_greet.flytekit_task import GreetTask

    greet = GreetTask("greet", greeting="Hi")

    @workflow
    def hello(name: str) -> str:
        return greet(name=name)

Invariants:
    * The serialized args name ``taskbox.flytekit.executors.greet``: the image's taskbox finds executor ``greet``
      by its entry-point name, without flytekit and without importing this module.
"""

from __future__ import annotations

from typing import Any

from taskbox.flytekit import TaskboxTask


class GreetTask(TaskboxTask):
    """``"<greeting>, <name>!"`` for the input ``name`` (output ``message``), run by the ``greet`` executor.

    Args:
        name: The task's name.
        greeting: The word before the name (validated by ``GreetConfig`` now, not in the pod).
        image: The executor image; default :attr:`default_image`.
        **options: flytekit task options (``retries``, ``timeout``, ``cache``, ``requests``...).
    """

    #: The image ``taskbox image build --executor examples/greet-executor --tag greet:0.1.0`` builds.
    default_image = "greet:0.1.0"

    def __init__(self, name: str, *, greeting: str = "Hello", image: str | None = None, **options: Any) -> None:
        super().__init__(name, executor="greet", config={"greeting": greeting}, inputs={"name": str},
                         outputs={"message": str}, image=image, **options)  # fmt: skip
