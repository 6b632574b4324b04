"""``--readme``: refresh the docs' copies of the latest results.

Only the text between the two markers changes, so the rest of the page
(the command, the targets) stays hand-written. The figures live in
docs/benchmark.md, the workers table in README.md's "Across processes".
"""

from __future__ import annotations

from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
PAGES = (REPO / "README.md", REPO / "docs" / "benchmark.md")

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


def update_pages(text: str, start: str = START, end: str = END) -> List[str]:
    """Update every page in ``PAGES`` that holds the markers; their names."""
    return [
        str(page.relative_to(REPO))
        for page in PAGES
        if page.exists() and update(page, text, start, end)
    ]
