"""The sliding window's arithmetic on its own (``_windows``): stand-in events,
no google-adk, no storage, no event loop."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, List, Optional

from adk_compaction_backport._windows import (
    OwnSummary,
    earlier_due_turn,
    may_be_due,
    new_invocations,
    seconds_since_end,
    sliding_interval,
    turn_of,
    window_events,
)


class Fake(SimpleNamespace):
    """A stand-in for a pydantic model: attributes and ``model_copy``."""

    def model_copy(self, update: Any) -> Fake:
        return Fake(**{**vars(self), **update})


def said(invocation: str, at: float, event_id: Optional[str] = None) -> Fake:
    actions = Fake(compaction=None, rewind_before_invocation_id=None)
    return Fake(
        id=event_id or f"{invocation}@{at}",
        invocation_id=invocation,
        timestamp=at,
        actions=actions,
    )


def summary(start: float, end: float, at: float, event_id: str = "") -> Fake:
    compaction = Fake(start_timestamp=start, end_timestamp=end)
    actions = Fake(compaction=compaction, rewind_before_invocation_id=None)
    return Fake(
        id=event_id or f"summary {start}-{end}",
        invocation_id="",
        timestamp=at,
        actions=actions,
    )


def rewind(before: str, at: float) -> Fake:
    actions = Fake(compaction=None, rewind_before_invocation_id=before)
    return Fake(id=f"rewind@{at}", invocation_id="r", timestamp=at, actions=actions)


def app(interval: Optional[int] = 2, token_threshold: Optional[int] = None) -> Any:
    config = Fake(compaction_interval=interval, token_threshold=token_threshold)
    return Fake(events_compaction_config=config)


TURNS = [said("i1", 1.0), said("i2", 2.0), said("i3", 3.0)]


def end_of(event: Any) -> Optional[float]:
    compaction = event.actions.compaction
    return None if compaction is None else compaction.end_timestamp


def test_the_interval_decides_alone_only_without_a_token_threshold():
    assert sliding_interval(app(3)) == 3
    assert sliding_interval(app(3, token_threshold=100)) is None
    assert sliding_interval(app(None)) is None
    assert sliding_interval(Fake(events_compaction_config=None)) is None


def test_new_invocations_are_counted_after_the_newest_summary():
    assert new_invocations(TURNS) == ["i1", "i2", "i3"]
    assert new_invocations([*TURNS, summary(1.0, 2.0, at=3.5)]) == ["i3"]
    repeated = [said("i1", 1.0), said("i1", 1.5), said("i2", 2.0)]
    assert new_invocations(repeated) == ["i1", "i2"]


def test_a_summary_may_be_due_from_the_intervals_count_of_new_invocations():
    assert not may_be_due(app(3), TURNS[:2])
    assert may_be_due(app(3), TURNS)
    assert not may_be_due(app(2), [*TURNS, summary(1.0, 2.0, at=3.5)])
    assert may_be_due(app(2, token_threshold=100), TURNS[:1])  # not ours to say
    assert not may_be_due(Fake(events_compaction_config=None), TURNS)


def test_the_earlier_due_turn_is_the_one_that_filled_the_first_window():
    assert earlier_due_turn(app(2), TURNS[:2]) is None  # the last turn's own
    assert earlier_due_turn(app(2), TURNS) == "i2"
    assert earlier_due_turn(app(1), TURNS) == "i1"
    assert earlier_due_turn(app(0), TURNS) is None
    assert earlier_due_turn(app(2, token_threshold=100), TURNS) is None


def test_seconds_since_a_turn_ended_count_from_its_last_event():
    events = [said("i1", 1.0), said("i1", 4.0), said("i2", 5.0)]
    assert seconds_since_end(events, "i1", now=10.0) == 6.0
    assert seconds_since_end(events, "unknown", now=10.0) == 10.0


def test_the_turn_is_the_last_invocation_that_is_not_a_summary():
    assert turn_of([*TURNS, summary(1.0, 2.0, at=3.5)]) == "i3"
    assert turn_of([]) == ""


def test_the_window_is_what_the_turn_saw_with_ranges_widened():
    window = window_events([*TURNS[:2], summary(1.0, 2.0, at=2.5)])
    assert [e.id for e in window] == [e.id for e in TURNS[:2]] + ["summary 1.0-2.0"]
    assert end_of(window[-1]) > 2.0  # read back rounded, it still covers 2.0


def test_this_processes_summary_that_landed_since_joins_the_window():
    own = OwnSummary(summary(1.0, 2.0, at=3.5), first_event_id=TURNS[0].id)
    assert [e.id for e in window_events(TURNS, own)][-1] == "summary 1.0-2.0"


def test_a_summary_of_another_incarnation_does_not_join():
    own = OwnSummary(summary(1.0, 2.0, at=3.5), first_event_id="gone")
    assert [e.id for e in window_events(TURNS, own)] == [e.id for e in TURNS]
    stored = [said("i1", 1.0, event_id="other"), summary(1.0, 2.0, at=3.5)]
    assert [e.id for e in window_events(TURNS, stored=stored)] == [e.id for e in TURNS]


def test_the_newest_summary_stored_by_any_process_joins_once():
    older, newer = summary(1.0, 1.0, at=2.5), summary(1.0, 2.0, at=3.5)
    stored = [*TURNS, older, newer]
    own = OwnSummary(older, first_event_id=TURNS[0].id)
    window = window_events(TURNS, own, stored)
    assert [e.id for e in window] == [e.id for e in TURNS] + [newer.id]


def test_a_summary_older_than_one_the_turn_saw_does_not_join():
    seen = [*TURNS, summary(1.0, 2.0, at=3.5)]
    stored = [*seen, summary(1.0, 1.0, at=3.6, event_id="late")]
    assert "late" not in [e.id for e in window_events(seen, stored=stored)]


def test_rewound_events_are_left_out_of_the_window():
    seen = [*TURNS, rewind("i2", 3.5)]
    assert [e.id for e in window_events(seen)] == [TURNS[0].id]


def test_each_summary_sits_after_the_last_event_it_covers() -> None:
    """Late summaries move back to their range; one never moves before a
    summary that came earlier; events out of time order keep their order."""
    from adk_compaction_backport._compaction_events import summaries_after_their_range

    a, b, c, d = said("i1", 1.0), said("i2", 2.0), said("i3", 3.0), said("i4", 2.5)
    first, second = summary(1.0, 2.0, 3.5, "first"), summary(1.0, 1.0, 3.6, "second")
    placed = summaries_after_their_range([a, b, c, d, first, second])
    # ``second`` ends at 1.0 (after a) but may not go before ``first``.
    assert [e.id for e in placed] == [a.id, b.id, "first", "second", c.id, d.id]
    assert placed[2].actions.compaction.end_timestamp > 2.0  # widened by the slack


def test_a_summary_is_widened_once_however_often_a_turn_reads_it(monkeypatch) -> None:
    """Every turn reads the session's summaries afresh; each stored summary
    (its id, time and range) is copied once, not once per turn (issue #22)."""
    from adk_compaction_backport import _compaction_events

    monkeypatch.setattr(_compaction_events, "_widened", {})
    copies = []

    class Counted(Fake):
        def model_copy(self, update: Any) -> Fake:
            copies.append(self)
            return super().model_copy(update)

    def stored_again() -> Any:  # what a fresh read of storage returns
        compaction = Counted(start_timestamp=1.0, end_timestamp=2.0)
        actions = Counted(compaction=compaction, rewind_before_invocation_id=None)
        return Counted(id="summary", invocation_id="", timestamp=2.5, actions=actions)

    turns = [window_events([*TURNS, stored_again()]) for _ in range(5)]
    assert len(copies) == 3  # the event, its actions and its compaction, once
    assert all(t[-1].actions.compaction.end_timestamp > 2.0 for t in turns)
    other = Counted(**{**vars(stored_again()), "timestamp": 2.6})  # not that one
    window_events([*TURNS, other])
    assert len(copies) == 6


def test_the_passes_facts_count_new_invocations_as_the_events_do() -> None:
    """``SeenWindow.new_invocations`` reads the columns of its one pass, never
    the events; on random sessions (out-of-order summaries, summaries without
    an end, a landed summary or none, a rewind) it says what a pass over the
    window says."""
    import random

    from adk_compaction_backport._windows import SeenWindow, window_from

    rng = random.Random(3)
    for _ in range(1500):
        events: List[Any] = []
        at = 0.0
        for index in range(rng.randint(0, 14)):
            at += rng.choice([0.5, 1.0, 1e-7])
            kind = rng.random()
            if kind < 0.6:
                events.append(said(f"i{rng.randint(0, 6)}", at, f"e{index}"))
            elif kind < 0.95:
                start = rng.uniform(0, at)
                end = rng.choice([rng.uniform(start, at), None, 0.0])
                events.append(summary(start, end, at, f"s{index}"))
            else:
                events.append(rewind(f"i{rng.randint(0, 6)}", at))
        seen = SeenWindow(events)
        stored = None
        if rng.random() < 0.5:
            end = rng.uniform(0, at + 1)
            landed = summary(rng.uniform(0, end), end, at + 1, "landed")
            stored = [*events, landed]
        window = window_from(seen, None, stored) if stored else seen.events
        assert seen.new_invocations(window) == new_invocations(window)


def test_the_newest_end_leaves_out_an_end_that_is_not_a_number() -> None:
    """Whatever order the summaries come in: a NaN end reaches nothing."""
    from adk_compaction_backport._windows import SeenWindow, newest_end

    nan, one = summary(0.5, float("nan"), 1.5), summary(0.5, 1.0, 1.6)
    for order in ([nan, one], [one, nan]):
        compactions = [event.actions.compaction for event in order]
        assert newest_end([None, *compactions]) == 1.0
        assert SeenWindow([*TURNS[:1], *order]).newest_end == 1.0
    assert newest_end([nan.actions.compaction]) == 0.0
    assert newest_end([]) == 0.0
