"""The "same conversation" rule on its own, with real google-adk events.

``tests/test_leak.py`` stages each case end to end on real databases; this
file names every reason a summary is refused, one at a time, and checks that
rewinds are read as upstream's prompt builder reads them.
"""

from __future__ import annotations

from typing import Any, List, Optional

import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions, EventCompaction
from google.adk.sessions.session import Session
from google.genai import types

from adk_compaction_backport._rewinds import live_events
from adk_compaction_backport._summary_writes import (
    Covered,
    Snapshot,
    _same_events,
    refusal,
)


def said(invocation: str, text: str, at: float, author: str = "user") -> Event:
    return Event(
        invocation_id=invocation,
        author=author,
        timestamp=at,
        content=types.Content(role="user", parts=[types.Part(text=text)]),
    )


REWINDS = "rewind_before_invocation_id" in EventActions.model_fields
"""Whether this release has rewinds (from 1.17)."""


def rewind(before: str, at: float) -> Event:
    actions = EventActions(rewind_before_invocation_id=before)
    return Event(invocation_id="rewind", author="user", timestamp=at, actions=actions)


def summary(start: float, end: float, at: float) -> Event:
    compaction = EventCompaction(
        start_timestamp=start,
        end_timestamp=end,
        compacted_content=types.Content(role="model", parts=[types.Part(text="s")]),
    )
    return Event(
        invocation_id="compaction",
        author="user",
        timestamp=at,
        actions=EventActions(compaction=compaction),
    )


needs_rewinds = pytest.mark.skipif(
    not REWINDS, reason="no rewinds before google-adk 1.17"
)


def session(events: List[Event]) -> Session:
    return Session(id="s", app_name="app", user_id="u", events=list(events))


TURNS = [said("i1", "one", 1.0), said("i2", "two", 2.0), said("i3", "three", 3.0)]
SUMMARY_OF_1_2 = summary(1.0, 2.0, at=3.5)
SNAPSHOT = Snapshot.of(session(TURNS[:2]), TURNS[:2])


def why(target: Optional[Session]) -> Optional[str]:
    return refusal(SNAPSHOT, SUMMARY_OF_1_2, target)


def test_the_same_conversation_moved_on_takes_the_summary():
    assert why(session(TURNS)) is None


def test_a_deleted_session_takes_no_summary():
    assert "deleted" in why(None)


def test_a_session_created_again_with_the_same_id_takes_none():
    again = [said("j1", "new one", 5.0)]
    assert "no longer holds the conversation" in why(session(again))


def test_a_summarized_event_removed_from_storage_refuses_it():
    assert "removed from storage" in why(session([TURNS[0], TURNS[2]]))


@needs_rewinds
def test_a_rewind_over_a_summarized_turn_refuses_it():
    assert "rewound" in why(session([*TURNS, rewind("i2", 4.0)]))


@needs_rewinds
def test_a_rewind_after_the_summarized_turns_does_not():
    assert why(session([*TURNS, rewind("i3", 4.0)])) is None


def test_summarized_events_stored_in_another_order_refuse_it():
    assert "order" in why(session([TURNS[1], TURNS[0], TURNS[2]]))


def test_a_summary_reaching_as_far_already_stored_refuses_it():
    other = summary(1.0, 2.0, at=3.6)
    assert "reaching as far" in why(session([*TURNS, other]))


@needs_rewinds
def test_events_a_rewind_removed_are_not_live():
    events = [*TURNS, rewind("i2", 4.0), said("i4", "four", 5.0)]
    assert [e.invocation_id for e in live_events(events)] == ["i1", "i4"]


@needs_rewinds
def test_later_rewinds_are_applied_first():
    events: List[Any] = [
        TURNS[0],
        TURNS[1],
        rewind("i2", 2.5),
        said("i3", "three", 3.0),
        rewind("i1", 3.5),
        said("i4", "four", 4.0),
    ]
    assert [e.invocation_id for e in live_events(events)] == ["i4"]


def test_the_checks_past_the_shared_events_say_what_the_whole_check_says() -> None:
    """A read here returns the turn's older events as the very objects the turn
    holds, and the checks then read only what lies past them (issue #22). On
    random sessions and reads (events lost, reordered, rewound, other
    summaries, another conversation) they refuse exactly when, and why, the
    check of every event does."""
    import random

    from adk_compaction_backport._windows import SeenWindow, window_from

    rng = random.Random(5)
    reasons = set()
    for _ in range(400):
        at, loaded = 0.0, []
        for index in range(rng.randint(1, 12)):
            at += rng.choice([1.0, 0.5])
            if rng.random() < 0.25 and loaded:
                start = rng.uniform(0, at)
                loaded.append(summary(start, rng.uniform(start, at), at))
            else:
                loaded.append(said(f"i{index}", "x", at))
        seen = SeenWindow(loaded)
        assert seen.columns is not None
        window = window_from(seen)
        fast = Snapshot.of(session(loaded), window, seen.columns)
        whole = Snapshot.of(session(loaded), window)
        end = rng.uniform(0, at)
        made = summary(rng.uniform(0, end), end, at + 1)
        shared = rng.randint(0, len(loaded))
        rest = [e.model_copy() for e in loaded[shared:]]
        for _ in range(rng.randint(0, 3)):
            change = rng.random()
            if change < 0.25 and rest:
                rest.pop(rng.randrange(len(rest)))
            elif change < 0.5 and len(rest) > 1:
                i, j = rng.sample(range(len(rest)), 2)
                rest[i], rest[j] = rest[j], rest[i]
            elif change < 0.7:
                rest.append(said("later", "y", at + 2))
            elif change < 0.85:
                start = rng.uniform(0, at)
                rest.append(summary(start, rng.uniform(start, at + 1), at + 2))
            elif loaded and REWINDS:
                rest.append(rewind(rng.choice(loaded).invocation_id, at + 3))
        target = session([*loaded[:shared], *rest])
        if rng.random() < 0.05:
            target = session([said("other", "z", 0.5), *rest])
        got = refusal(fast, made, target)
        assert got == refusal(whole, made, target)
        assert got == refusal(fast, made, target, Covered(fast, made))
        kept = rng.randint(0, len(target.events))  # the same ids, other objects
        copies = [e.model_copy() for e in target.events[kept:]]
        other = rng.choice([session(loaded), session([*target.events[:kept], *copies])])
        assert _same_events(target, other, fast) == _same_events(target, other)
        reasons.add(got)
    assert len(reasons) >= 4  # stored, and refused for several reasons
