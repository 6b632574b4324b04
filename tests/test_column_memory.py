"""A turn's pass built on the session's last pass (``_column_memory``): stand-in
events, no google-adk, no storage, no event loop.

The next turn reads the session's stored events again as new objects; what
it builds on the last pass must be exactly what a pass from scratch finds,
whatever changed in storage between the two (events appended, a summary
stored with an older timestamp, a rewind, the session deleted and created
again with the same ids or the same times). An event's id and timestamp
name it: storage keys events by id, a new uuid each."""

from __future__ import annotations

import random
from itertools import count
from typing import Any, ClassVar, List

from adk_compaction_backport._column_memory import ColumnMemory
from adk_compaction_backport._windows import SeenWindow, new_invocations
from test_windows import Fake, rewind, said, summary


def fresh(events: List[Any]) -> List[Any]:
    """The same stored events read again: equal, but new objects."""
    return [Fake(**vars(event)) for event in events]


_made = count()


def random_event(rng: random.Random, at: float) -> Any:
    """An event stored once: its id (with its timestamp) names its content,
    as in storage (an event's id is its key there, a new uuid each)."""
    index = next(_made)
    kind = rng.random()
    if kind < 0.65:
        return said(f"i{rng.randint(0, 9)}", at, f"e{index}")
    if kind < 0.97:
        start = rng.uniform(0, at)
        end = rng.choice([rng.uniform(start, at), None, 0.0])
        return summary(start, end, at, f"s{index}")
    return rewind(f"i{rng.randint(0, 9)}", at)


def changed(rng: random.Random, events: List[Any]) -> List[Any]:
    """``events`` as storage may hold them at the next turn."""
    later = fresh(events)
    at = later[-1].timestamp if later else 0.0
    change = rng.random()
    if change < 0.15 and later:  # an event stored with an older timestamp
        place = rng.randrange(len(later))
        later.insert(place, random_event(rng, later[place].timestamp))
    elif change < 0.25 and later:  # deleted, created again with the same ids
        later = [Fake(**{**vars(e), "timestamp": e.timestamp + 0.25}) for e in later]
    elif change < 0.35 and later:  # created again at the same times, other ids
        later = [Fake(**{**vars(e), "id": f"again {e.id}"}) for e in later]
    elif change < 0.40:
        later = []
    for _ in range(rng.randint(0, 5)):  # the turn's own events
        at += rng.choice([0.5, 1.0, 1e-7])
        later.append(random_event(rng, at))
    return later


def same_pass(built: SeenWindow, scratch: SeenWindow) -> None:
    assert built.columns == scratch.columns
    assert built.newest_end == scratch.newest_end
    assert built.rewinds == scratch.rewinds
    assert built.first_id == scratch.first_id
    assert built.ids == scratch.ids
    assert built.events == scratch.events
    if built.columns is not None:  # no rewind: the events seen, in place
        for one, seen in zip(built.events, built.seen):
            if one.actions.compaction is None:  # not an older turn's object
                assert one is seen
    assert built.new_invocations(built.events) == new_invocations(scratch.events)


def test_a_pass_built_on_the_last_turns_is_a_pass_from_scratch() -> None:
    rng = random.Random(22)
    for _ in range(400):
        events = [random_event(rng, float(i)) for i in range(rng.randint(0, 30))]
        earlier = SeenWindow(events).remembered
        for _turn in range(4):
            events = changed(rng, events)
            built = SeenWindow(events, earlier)
            same_pass(built, SeenWindow(fresh(events)))
            earlier = built.remembered


def test_a_pass_on_the_same_events_reads_only_two_columns_of_them() -> None:
    """What the next turn reads of the events the last one saw: ids and
    timestamps (to find where they stop being the same), nothing else."""
    events = [said(f"i{i // 3}", float(i), f"e{i}") for i in range(300)]
    events[100::50] = [summary(0.0, float(i), float(i), f"s{i}") for i in range(4)]
    earlier = SeenWindow(events).remembered

    class Counting(Fake):
        reads: ClassVar[List[str]] = []

        def __getattribute__(self, name: str) -> Any:
            if not name.startswith("_") and name != "model_copy":
                Counting.reads.append(name)
            return super().__getattribute__(name)

    later = [Counting(**vars(e)) for e in [*events, said("new", 400.0, "n")]]
    window = SeenWindow(later, earlier)
    assert window.columns is not None
    assert window.columns.invocations[-1] == "new"
    assert sorted(set(Counting.reads)) == [
        "actions",
        "id",
        "invocation_id",
        "timestamp",
    ]
    assert Counting.reads.count("actions") == 1  # the new event only
    assert Counting.reads.count("invocation_id") == 1


def test_a_rewind_leaves_nothing_to_build_on() -> None:
    memory = ColumnMemory()
    events = [said("i1", 1.0), said("i2", 2.0)]
    memory.seen_window("session", events)
    assert len(memory) == 1
    memory.seen_window("session", [*events, rewind("i2", 3.0)])
    assert len(memory) == 0


def test_the_memory_keeps_at_most_its_events_forgetting_the_oldest_session() -> None:
    memory = ColumnMemory(kept_events=10)
    for name in ("a", "b", "c"):
        memory.seen_window(name, [said(f"{name}{i}", float(i)) for i in range(4)])
    assert len(memory) == 2  # 12 events: "a" forgotten
    memory.seen_window("b", [said(f"b{i}", float(i)) for i in range(5)])
    memory.seen_window("d", [said(f"d{i}", float(i)) for i in range(4)])
    assert len(memory) == 2  # "c" was used longest ago
    memory.seen_window("huge", [said(f"h{i}", float(i)) for i in range(50)])
    assert len(memory) == 1  # the newest pass is kept, however long
    memory.forget()
    assert len(memory) == 0
