"""The incremental read's merge on its own (``_incremental_reads``): the turn's
older events, taken as slices, followed by storage's recent ones. Stand-in
events and a stand-in service; no google-adk, no storage."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any, List, Optional

from adk_compaction_backport._incremental_reads import (
    LOOKBACK,
    TOLERANCE,
    _older_events,
    read_session,
    shared_prefix,
)


def event(event_id: str, at: float) -> SimpleNamespace:
    return SimpleNamespace(id=event_id, timestamp=at)


def older_by_ids(
    known: List[Any], cutoff: float, recent: List[Any]
) -> Optional[List[Any]]:
    """The rule as first written: every known event storage did not return,
    None if one of them is not older than the cutoff."""
    recent_ids = {e.id for e in recent}
    older = [e for e in known if e.id not in recent_ids]
    if max((e.timestamp for e in older), default=cutoff) >= cutoff + TOLERANCE:
        return None
    return older


def test_the_merge_equals_a_look_up_of_every_event_by_id() -> None:
    """Random sessions, unordered timestamps, storage returning the recent
    events or dropping some: the slices say what the id look-up says."""
    rng = random.Random(7)
    for _ in range(2000):
        count = rng.randint(0, 40)
        known = [event(f"e{i}", rng.uniform(0, 30)) for i in range(count)]
        cutoff = rng.uniform(0, 30)
        recent = [e for e in known if e.timestamp >= cutoff and rng.random() > 0.1]
        recent += [event(f"new{i}", cutoff + rng.uniform(0, 5)) for i in range(3)]
        timestamps = [e.timestamp for e in known]
        assert _older_events(known, timestamps, cutoff, recent) == older_by_ids(
            known, cutoff, recent
        )


def test_an_event_the_turn_holds_that_storage_lost_asks_for_a_whole_read() -> None:
    known = [event("a", 1.0), event("b", 55.0), event("c", 60.0)]
    cutoff = 60.0 - LOOKBACK
    assert _older_events(known, [1.0, 55.0, 60.0], cutoff, [known[2]]) is None
    assert _older_events(known, [1.0, 55.0, 60.0], cutoff, known[1:]) == [known[0]]


class Service:
    """``get_session`` as the SQL services answer it: events from
    ``after_timestamp`` on, as new objects (a read parses them again)."""

    def __init__(self, stored: List[Any]) -> None:
        self.stored = stored
        self.configs: List[Any] = []

    async def get_session(self, config: Any = None, **names: Any) -> Any:
        self.configs.append(config)
        after = getattr(config, "after_timestamp", None) or float("-inf")
        events = [event(e.id, e.timestamp) for e in self.stored if e.timestamp >= after]
        return Session(events)


class Session(SimpleNamespace):
    def __init__(self, events: List[Any]) -> None:
        super().__init__(events=events)

    def model_copy(self, update: Any) -> Session:
        return Session(update["events"])


def test_a_read_returns_the_whole_session_with_the_older_events_as_known() -> None:
    known = [event(f"e{i}", float(i)) for i in range(100)]
    service = Service([*known, event("summary", 99.5)])
    fresh = asyncio.run(read_session(service, "app", "user", "s", known))
    assert [e.id for e in fresh.events] == [*(e.id for e in known), "summary"]
    assert service.configs[0] is not None  # incremental: asked from the cutoff
    assert len(service.configs) == 1
    prefix = shared_prefix(fresh.events, known)
    assert fresh.events[:prefix] == known[:prefix]
    assert all(a is b for a, b in zip(fresh.events[:prefix], known))
    assert prefix == 100 - LOOKBACK - 1  # the last seconds were read again


def test_the_shared_prefix_counts_the_very_objects_only() -> None:
    known = [event("a", 1.0), event("b", 2.0)]
    assert shared_prefix(known, known) == 2
    assert shared_prefix([known[0], event("b", 2.0)], known) == 1
    assert shared_prefix([], known) == 0
    assert shared_prefix([known[0], known[1], event("c", 3.0)], known) == 2
