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
inflates Python-heavy code), 16 alternating rounds, and the ratio.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
import warnings
from typing import List, Optional

TURNS = 6


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
    order = ("released", "package", "package", "released") * (4 if plain else 1)
    totals = {"released": [], "package": []}
    for side in order:
        (acb.apply if side == "package" else acb.revert)()
        profile = cProfile.Profile()
        cpu = time.process_time()
        if not plain:
            profile.enable()
        for turn in range(1, TURNS + 1):
            stream = runner.run_async(
                user_id=USER_ID, session_id=sessions[side], new_message=message(0, turn)
            )
            await _read_to_the_end(stream, [])
        await acb.drain(timeout=60)
        profile.disable()
        took = (time.process_time() - cpu) / TURNS * 1000
        totals[side].append(took)
        label = "plain" if plain else "profiled"
        print(f"{side}: {took:.0f} ms CPU per turn ({label})", flush=True)
        if side == "package" and not plain:
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out).sort_stats("cumulative")
            stats.print_stats("adk_compaction_backport", 25)
            print(out.getvalue(), flush=True)
    released, package = (sum(totals[s]) / len(totals[s]) for s in totals)
    print(f"package / released CPU per turn: {package / released:.3f}", flush=True)
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
