"""What a finished workload left in storage, compared with what it should be."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from adk_compaction_backport._compaction_events import TIMESTAMP_SLACK as SLACK
from adk_compaction_backport.verify.fake_model import REPLY_PREFIX

Range = Tuple[int, int]


def expected_ranges(turns: int, interval: int, overlap: int) -> List[Range]:
    """The summaries of a client that waits for every turn and its summary.

    The n-th summary ends at invocation ``n * interval`` and starts ``overlap``
    invocations before the first new one (the first starts at invocation 1).
    """
    ranges = []
    for end in range(interval, turns + 1, interval):
        first_new = end - interval + 1
        ranges.append((max(1, first_new - overlap) if end > interval else 1, end))
    return ranges


def _compaction_bounds(event: Any) -> Optional[Tuple[float, float]]:
    compaction = getattr(getattr(event, "actions", None), "compaction", None)
    if compaction is None:
        return None
    if isinstance(compaction, dict):  # google-adk 1.18-1.21 without the fix (#3487)
        return compaction.get("start_timestamp"), compaction.get("end_timestamp")
    return compaction.start_timestamp, compaction.end_timestamp


def _text(event: Any) -> str:
    content = getattr(event, "content", None)
    if content is None or not content.parts:
        return ""
    return content.parts[0].text or ""


@dataclass
class SessionFindings:
    user_messages: List[str] = field(default_factory=list)
    replies: List[str] = field(default_factory=list)
    summary_ranges: List[Range] = field(default_factory=list)


def inspect_session(session: Any) -> SessionFindings:
    """Read user messages, replies and summary ranges (in invocation numbers)."""
    findings = SessionFindings()
    order: dict = {}
    plain = [e for e in session.events if _compaction_bounds(e) is None]
    for event in plain:
        if event.author == "user":
            order.setdefault(event.invocation_id, len(order) + 1)
            findings.user_messages.append(_text(event))
        elif _text(event).startswith(REPLY_PREFIX):
            findings.replies.append(_text(event))
    for event in session.events:
        bounds = _compaction_bounds(event)
        if bounds is None or None in bounds:
            continue
        start, end = bounds
        covered = sorted(
            order[e.invocation_id]
            for e in plain
            if e.invocation_id in order and start - SLACK <= e.timestamp <= end + SLACK
        )
        if covered:
            findings.summary_ranges.append((covered[0], covered[-1]))
    return findings


@dataclass
class SummaryCheck:
    expected: int
    stored: int
    duplicated: int
    unexpected: int
    missing: int


def check_summaries(ranges: List[Range], expected: List[Range]) -> SummaryCheck:
    counts = Counter(ranges)
    return SummaryCheck(
        expected=len(expected),
        stored=len(ranges),
        duplicated=sum(n - 1 for n in counts.values() if n > 1),
        unexpected=sum(n for r, n in counts.items() if r not in expected),
        missing=sum(1 for r in expected if r not in counts),
    )
