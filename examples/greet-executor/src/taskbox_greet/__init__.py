"""An example taskbox executor plugin (``greet``), installed through the ``taskbox.executors`` entry point."""
