"""``python -m taskbox`` is ``taskbox``."""

from taskbox.entrypoint.cli import console_main

console_main()
