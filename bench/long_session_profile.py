"""Where a long session's turn spends the package's CPU (issue #22).

Run in a release's bench venv: ``python -m bench.long_session_profile KIND
EVENTS [URL] [--plain]`` (KIND: ``sqlite``, ``postgresql`` or ``sqlite_service``; URL a
driverless database URL, a new SQLite file by default). One process, one
runner and service, two sessions prefilled with EVENTS events as
``bench.long_sessions`` does; then rounds of 6 sequential turns alternating
``revert()`` (released) and ``apply()`` (the package), each under cProfile:
prints the CPU time per turn of every round and, for the package's rounds,
its functions by cumulative time, so a cost that grows with the session shows
as call counts in the thousands per turn. ``--plain``: no cProfile (which
inflates Python-heavy code), 64 alternating rounds of 2 turns (one
compaction each; short rounds, so the machine's drift between the two rounds
of a pair stays small), and per pair of rounds the package's extra CPU per
turn: its median with a ~95% interval, of all CPU time and of the CPU time
outside the garbage collector. At 4,000 events
collections are about 40% of a turn and come in lumps (a full one costs
about a third of a turn), so which round they land in decides most of a
total's spread; the time outside them, and the number of collections each
side caused, say what the package costs with a much narrower spread.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import pstats
import sys
import tempfile
import time
import warnings
from typing import List, Optional

from bench.stats import median_ci, percentile

TURNS = 6
PLAIN_TURNS = 2
PLAIN_ROUNDS = 64


class GcClock:
    """CPU time spent in the garbage collector, and collections by generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.collections[info["generation"]] += 1

    def reading(self) -> tuple:
        return self.seconds, list(self.collections)


def paired_extra(order: tuple, per_side: dict) -> List[float]:
    """The package's CPU per turn minus released's, pair of rounds by pair
    (``order`` alternates the sides ABBA: rounds 0 and 1, 2 and 3, ...)."""
    taken = {
        "released": iter(per_side["released"]),
        "package": iter(per_side["package"]),
    }
    values = [next(taken[side]) for side in order]
    extra = []
    for first in range(0, len(order) - 1, 2):
        by_side = {order[first]: values[first], order[first + 1]: values[first + 1]}
        extra.append(by_side["package"] - by_side["released"])
    return extra


async def _profile(kind: str, events: int, url: str, plain: bool = False) -> None:
    from google.adk.runners import Runner

    import adk_compaction_backport as acb
    from adk_compaction_backport.verify.fake_model import SummarizerControl, make_app
    from adk_compaction_backport.verify.scenario import USER_ID, message
    from bench.long_sessions import _read_to_the_end, _warm_up, prefill, session_service

    control = SummarizerControl(delay=0.5)
    app = make_app(control, interval=2, overlap=1, reply_delay=0.1, name="profile")
    service = session_service(kind, url)
    runner = Runner(app=app, session_service=service)
    sessions = {}
    for side in ("package", "released"):
        session = await service.create_session(app_name="profile", user_id=USER_ID)
        await prefill(service, session, events)
        sessions[side] = session.id
    await _warm_up(runner, service, "profile", 3)
    quads = PLAIN_ROUNDS // 4 if plain else 1
    order = ("released", "package", "package", "released") * quads
    turns = PLAIN_TURNS if plain else TURNS
    totals = {"released": [], "package": []}
    outside_gc = {"released": [], "package": []}
    collections = {"released": [0, 0, 0], "package": [0, 0, 0]}
    clock = GcClock()
    for side in order:
        (acb.apply if side == "package" else acb.revert)()
        profile = cProfile.Profile()
        cpu = time.process_time()
        gc_before, counts_before = clock.reading()
        if not plain:
            profile.enable()
        for turn in range(1, turns + 1):
            stream = runner.run_async(
                user_id=USER_ID, session_id=sessions[side], new_message=message(0, turn)
            )
            await _read_to_the_end(stream, [])
        await acb.drain(timeout=60)
        profile.disable()
        took = (time.process_time() - cpu) / turns * 1000
        gc_after, counts_after = clock.reading()
        in_gc = (gc_after - gc_before) / turns * 1000
        totals[side].append(took)
        outside_gc[side].append(took - in_gc)
        for generation in range(3):
            collections[side][generation] += (
                counts_after[generation] - counts_before[generation]
            )
        label = "plain" if plain else "profiled"
        if plain:
            continue
        print(
            f"{side}: {took:.0f} ms CPU per turn ({label}), {took - in_gc:.0f} "
            "outside the garbage collector",
            flush=True,
        )
        if side == "package" and not plain:
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out).sort_stats("cumulative")
            stats.print_stats("adk_compaction_backport", 25)
            print(out.getvalue(), flush=True)
    for name, per_side in (("all CPU", totals), ("outside the collector", outside_gc)):
        released, package = (sum(per_side[s]) / len(per_side[s]) for s in per_side)
        print(
            f"{name}: package / released CPU per turn {package / released:.3f} "
            f"({package:.1f} / {released:.1f} ms)",
            flush=True,
        )
        if plain:
            extra = paired_extra(order, per_side)
            low, high = median_ci(extra)
            print(
                f"  extra per turn, median of {len(extra)} pairs of rounds: "
                f"{percentile(extra, 50):+.1f} ms (~95%: {low:+.1f} to {high:+.1f}), "
                f"{percentile(extra, 50) / released:+.1%} of released's",
                flush=True,
            )
    for side, counts in collections.items():
        print(f"{side}: collections by generation {counts}", flush=True)
    acb.apply()


def main(argv: Optional[List[str]] = None) -> int:
    args = argv or sys.argv[1:]
    plain = "--plain" in args  # no cProfile: CPU as it is, more rounds
    args = [a for a in args if a != "--plain"]
    warnings.simplefilter("ignore")
    import google.adk.runners  # noqa: F401 - the start-up hook patches here

    with tempfile.TemporaryDirectory(prefix="adk-bench-") as tmp:
        url = args[2] if len(args) > 2 else f"sqlite:///{tmp}/profile.db"
        asyncio.run(_profile(args[0], int(args[1]), url, plain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
