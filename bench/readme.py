"""``--readme``: refresh the README's copy of the latest results.

Only the text between the two markers changes, so the rest of the README
(the command, the targets) stays hand-written.
"""

from __future__ import annotations

from pathlib import Path

START = "<!-- bench results: start (python -m bench --readme rewrites this) -->"
END = "<!-- bench results: end -->"
OVERHEADS_START = (
    "<!-- bench overheads: start (python -m bench --overheads-only --readme "
    "rewrites this) -->"
)
OVERHEADS_END = "<!-- bench overheads: end -->"
WORKERS_START = (
    "<!-- bench workers: start (python -m bench --workers-only --readme "
    "rewrites this) -->"
)
WORKERS_END = "<!-- bench workers: end -->"
FIRST_TURN_START = (
    "<!-- bench first turn: start (python -m bench --first-turn-only --readme "
    "rewrites this) -->"
)
FIRST_TURN_END = "<!-- bench first turn: end -->"


def update(readme: Path, text: str, start: str = START, end: str = END) -> bool:
    """Replace what is between the markers; False when they are missing."""
    current = readme.read_text()
    head, found, rest = current.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found or not found_end:
        return False
    readme.write_text(f"{head}{start}\n{text.rstrip()}\n{end}{tail}")
    return True
