"""A compaction's place in its session's order (``_turn_order``) on its own:
a recording stand-in lock backend, stand-in events, no google-adk, no
database. ``test_cross_process.py`` stages the same with real processes."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any, List, Optional

import pytest

from adk_compaction_backport._session_writes import SessionWrites
from adk_compaction_backport._turn_order import in_turn_order
from test_windows import TURNS, Fake, app, said, summary


class Backend:
    """Records every lock statement; ``elsewhere``: answers to "is this claim
    held by another process?", one per question (then False)."""

    reentrant = False

    def __init__(self, elsewhere: Optional[List[bool]] = None) -> None:
        self.guard = threading.Lock()
        self.held: dict = {}
        self.claims: set = set()
        self.failing = False
        self.elsewhere = list(elsewhere or [])
        self.log: List[str] = []

    def key_of(self, digest: bytes) -> str:
        return digest.hex()[:8]

    async def try_lock(self, key: str) -> Any:
        self.log.append(f"lock {key}")
        return (key, 0)

    async def unlock(self, token: Any) -> None:
        self.log.append(f"unlock {token[0]}")

    async def held_elsewhere(self, key: str) -> bool:
        self.log.append(f"asked {key}")
        return self.elsewhere.pop(0) if self.elsewhere else False


def identity(backend: Backend, stored: Any = None) -> Any:
    async def read(known: Any, timestamps: Any = None, seen: Any = None) -> Any:
        backend.log.append("read")
        return stored

    return SimpleNamespace(
        names=("app", "u", "s"),
        session_id="s",
        key=("storage", object(), "u", "s"),  # no other test's pass to build on
        locks=backend,
        read=read,
    )


async def enter(
    seen: List[Any],
    backend: Backend,
    waited: Optional[List[str]] = None,
    earlier_pending: bool = False,
) -> List[Any]:
    waits = waited if waited is not None else []

    async def after() -> bool:
        waits.append("earlier compaction")
        return earlier_pending

    order = in_turn_order(
        identity(backend),
        app(2),
        seen,
        SessionWrites(),
        limit=30.0,
        after=after,
        on_wait=lambda: waits.append("another process"),
    )
    async with order as window:
        backend.log.append("compacting")
    return window


def statements(backend: Backend) -> List[str]:
    """The log with keys numbered in order of appearance."""
    keys: dict = {}
    out = []
    for line in backend.log:
        verb, _, key = line.partition(" ")
        out.append(f"{verb} {keys.setdefault(key, len(keys))}" if key else verb)
    return out


@pytest.mark.asyncio
async def test_nothing_due_takes_no_claim_and_no_lock():
    backend, waited = Backend(), []
    window = await enter(TURNS[:1], backend, waited)
    assert [e.id for e in window] == [TURNS[0].id]
    assert backend.log == ["compacting"]
    assert waited == ["earlier compaction"]


@pytest.mark.asyncio
async def test_a_due_window_is_claimed_then_locked_read_once_and_let_go_in_order():
    backend = Backend()
    await enter(TURNS[:2], backend)
    assert statements(backend) == [
        "lock 0",  # the turn's claim
        "lock 1",  # the session's lock
        "read",
        "compacting",
        "unlock 1",
        "unlock 0",
    ]


@pytest.mark.asyncio
async def test_an_earlier_due_turn_claimed_elsewhere_is_waited_for_without_the_lock():
    backend, waited = Backend(elsewhere=[True, True, False]), []
    await enter([*TURNS, said("i4", 4.0)], backend, waited)
    assert statements(backend) == [
        "lock 0",  # claim of i4
        "lock 1",  # the session's lock
        "read",
        "asked 2",  # i2's claim: held elsewhere
        "unlock 1",  # let go of the lock while waiting
        "asked 2",  # still held
        "asked 2",  # gone
        "lock 1",
        "read",
        "asked 2",
        "compacting",
        "unlock 1",
        "unlock 0",
    ]
    assert waited == ["earlier compaction", "another process"]


@pytest.mark.asyncio
async def test_a_cancelled_wait_lets_go_of_the_claim():
    backend = Backend()

    async def after() -> bool:
        await asyncio.Event().wait()  # cancelled below
        return True

    order = in_turn_order(
        identity(backend), app(2), TURNS[:2], SessionWrites(), 30.0, after, list
    )
    entering = asyncio.ensure_future(order.__aenter__())
    await asyncio.sleep(0.01)
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    assert statements(backend) == ["lock 0", "unlock 0"]


class Watched(Fake):
    """A stand-in event that counts the reads of its ``actions``."""

    def __getattribute__(self, name: str) -> Any:
        if name == "actions":
            object.__getattribute__(self, "reads").append(name)
        return object.__getattribute__(self, name)


def watched(invocation: str, at: float) -> Watched:
    plain = said(invocation, at)
    return Watched(**vars(plain), reads=[])


@pytest.mark.asyncio
async def test_the_turns_events_are_passed_over_once_however_often_the_window_is_cut():
    # A long session's old events: each cut of the window (at the start, after
    # this process's earlier compaction, under the lock with storage read)
    # would otherwise pass over all of them again (issue #22: CPU per turn).
    old = [watched(f"old{i}", float(i)) for i in range(1, 41)]
    seen = [*old, summary(1.0, 40.0, at=40.5), said("i41", 41.0), said("i42", 42.0)]
    landed = summary(41.0, 41.0, at=42.5)
    backend = Backend()
    order = in_turn_order(
        identity(backend, Fake(events=[*seen, landed])),
        app(2),
        seen,
        SessionWrites(),
        30.0,
        after=lambda: asyncio.sleep(0, result=True),  # the window is cut again
        on_wait=list,
    )
    async with order as window:
        pass
    assert window[-1].id == landed.id
    assert {len(event.reads) for event in old} == {1}  # one pass: rewinds, summaries
