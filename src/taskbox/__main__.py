"""``python -m taskbox`` is ``taskbox``."""

import sys

from taskbox.entrypoint.cli import main

sys.exit(main())
