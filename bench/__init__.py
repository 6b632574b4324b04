"""Side-by-side benchmark: released google-adk, this package, the upstream patches.

Run ``python -m bench`` from the repository root (or ``tox -e bench``); see
``python -m bench --help`` and docs/benchmark.md.
"""
