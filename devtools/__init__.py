"""Helpers the tests and the benchmark share, kept out of the wheel.

Importable from the repository root: the benchmark runs with it as its
working directory, and pytest puts it on ``sys.path`` (``pythonpath`` in
pyproject.toml). Nothing here is installed for users.
"""
