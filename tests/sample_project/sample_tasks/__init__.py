"""A small user project for taskbox's tests: ``@taskbox.task`` functions in :mod:`sample_tasks.tasks`.

Importable from the project root (``tests/sample_project``): put that directory on ``sys.path`` (or
bundle it with ``taskbox bundle tests/sample_project``) and name a task as
``task-module sample_tasks.tasks task-name <function>``.
"""
