"""The race scenario behind ``python -m adk_compaction_backport verify``.

Reused by the test suite and the benchmark: a fake model in place of the
network, a summarizer whose latency (or an ``asyncio.Event``) we control, and
clients that talk to google-adk the way real front ends do.
"""
