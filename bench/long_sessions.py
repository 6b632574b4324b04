"""Long sessions: what a turn costs at hundreds and thousands of stored events.

Run as ``python -m bench.long_sessions SPEC OUT`` in a release's bench venv,
by ``bench.long_session_rows``, once per side (the parent sets
``ADK_COMPACTION_BACKPORT_DISABLE`` for released). Per run (session
service, length, sessions, client): a fresh database, each session prefilled
through the service with ``length`` old events (``prefill``: a user message
and a reply per invocation and a summary after every few, as a session that
compacted all along looks), then ``turns`` turns per session with compaction on, the
sessions at once (a sequential client reads each stream to its end; an eager
one sends the next message at the final reply). Measured: each turn's wall
time (to the final reply for an eager client); turns per second; the
process's CPU time per turn (the event loop's busy time: the fake model and
summarizer sleep without using any); every ``get_session`` the package makes
and the runner makes, with the events it returned and its time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
import uuid
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

PACKAGE = "adk_compaction_backport"
SQLITE_SERVICE = "sqlite_service"
PREFILLED_SUMMARY = "prefilled-summary"


_PROBES: Any = weakref.WeakKeyDictionary()  # storage -> its probes' answers


def _count_probes() -> None:
    """Wrap the package's revision probe (once per process) so that each
    ``CountedReads`` sees its service's probes."""
    try:
        from adk_compaction_backport import _session_identity
    except ImportError:  # a package without the probe
        return
    original = getattr(_session_identity, "unmoved", None)
    if original is None or getattr(original, "counted", False):
        return

    async def unmoved(storage: Any, names: Any, seen: Any) -> bool:
        answer = await original(storage, names, seen)
        _PROBES.setdefault(storage, []).append(answer)
        return answer

    unmoved.counted = True  # type: ignore[attr-defined]
    _session_identity.unmoved = unmoved


class CountedReads:
    """Wraps ``service.get_session``: (events, seconds) of each call, by caller.

    ``package``: calls made from the package's modules; ``runner``: the rest
    (google-adk's own read at the start of every turn). ``probes``: the
    package's one-row reads of the session's revision (``_revision_probe``),
    True where storage had not moved (then no ``get_session`` follows).
    """

    def __init__(self, service: Any) -> None:
        self.package: List[List[float]] = []
        self.runner: List[List[float]] = []
        self.full_package_reads = 0  # package calls without ``after_timestamp``
        self._get = service.get_session
        service.get_session = self.get_session
        _count_probes()
        self.probes: List[bool] = _PROBES.setdefault(service, [])

    async def get_session(self, **kwargs: Any) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        started = time.perf_counter()
        session = await self._get(**kwargs)
        took = time.perf_counter() - started
        events = len(session.events) if session is not None else 0
        if caller.startswith(PACKAGE):
            self.package.append([events, took])
            config = kwargs.get("config")
            self.full_package_reads += getattr(config, "after_timestamp", None) is None
        else:
            self.runner.append([events, took])
        return session


def plain_event(invocation: str, author: str, at: float, **fields: Any) -> Any:
    from google.adk.events.event import Event
    from google.genai import types

    role = "user" if author == "user" else "model"
    text = types.Content(role=role, parts=[types.Part(text=f"{invocation} {author}")])
    return Event(
        invocation_id=invocation, author=author, timestamp=at, content=text, **fields
    )


def summary_event(start: float, end: float, at: float, invocation: str) -> Any:
    """A compaction event covering ``start``-``end``, stored at ``at``."""
    from google.adk.events.event_actions import EventActions, EventCompaction
    from google.genai import types

    compaction = EventCompaction(
        start_timestamp=start,
        end_timestamp=end,
        compacted_content=types.Content(role="model", parts=[types.Part(text="s")]),
    )
    return plain_event(
        invocation, "user", at, actions=EventActions(compaction=compaction)
    )


async def prefill(
    service: Any, session: Any, events: int, interval: int = 2, overlap: int = 1
) -> None:
    """Append ``events`` old events (an hour ago) through ``service``, as a long
    session that compacted all along holds them: a user message and a reply
    per invocation and, after every ``interval`` invocations, a summary of
    them (from ``overlap`` invocations earlier) stored right after. So a
    session of 4,000 events holds 800 summaries at interval 2, and what a
    pass over the summaries costs shows."""
    start = time.time() - 3600
    firsts: List[float] = []  # each invocation's first event's time
    stored = 0
    while stored + 2 <= events:
        at = start + len(firsts)
        for offset, author in enumerate(("user", "assistant")):
            old = plain_event(f"old{len(firsts)}", author, at + offset / 2)
            await service.append_event(session, old)
        firsts.append(at)
        stored += 2
        if len(firsts) % interval == 0 and stored < events:
            back = interval + (overlap if len(firsts) > interval else 0)
            covered_from = firsts[max(0, len(firsts) - back)]
            summary = summary_event(covered_from, at + 0.5, at + 0.6, PREFILLED_SUMMARY)
            await service.append_event(session, summary)
            stored += 1


def measure_each(
    spec: Dict[str, Any], measure: Callable[[Dict[str, Any], Dict[str, Any]], Any]
) -> List[Dict[str, Any]]:
    """Each run ``spec`` asks for, measured; a run that fails says why and the
    others still run (one child process measures many)."""
    runs: List[Dict[str, Any]] = []
    for wanted in spec["runs"]:
        run: Dict[str, Any] = dict(wanted)
        try:
            run.update(measure(spec, wanted))
        except Exception as error:
            run["error"] = f"{error!r}"[:300]
            traceback.print_exc()
        runs.append(run)
        print(f"bench: {wanted} done", file=sys.stderr, flush=True)
    return runs


def session_service(kind: str, url: str) -> Any:
    from adk_compaction_backport.verify.urls import database_url

    if kind == SQLITE_SERVICE:
        from google.adk.sessions.sqlite_session_service import SqliteSessionService

        return SqliteSessionService(db_path=url[len("sqlite:///") :])
    from google.adk.sessions.database_session_service import DatabaseSessionService

    return DatabaseSessionService(db_url=database_url(url))


async def _read_to_the_end(stream: Any, failures: List[str]) -> None:
    try:
        async for _ in stream:
            pass
    except Exception as error:
        failures.append(repr(error)[:200])


async def _turns(
    runner: Any, session_id: str, spec: Dict[str, Any], record: Dict[str, Any]
) -> List[asyncio.Future]:
    """One session's turns; an eager client sends the next message at the final
    reply (a task reads the rest of the stream). Returns those tasks."""
    from adk_compaction_backport.verify.scenario import USER_ID, message

    eager, tails = spec.get("client") == "eager", []
    for turn in range(1, spec["turns"] + 1):
        started = time.perf_counter()
        stream = runner.run_async(
            user_id=USER_ID, session_id=session_id, new_message=message(0, turn)
        )
        try:
            async for event in stream:
                if eager and event.author != "user" and event.is_final_response():
                    break
        except Exception as error:
            record["failures"].append(repr(error)[:200])
            continue
        finally:
            record["turn_ms"].append((time.perf_counter() - started) * 1000)
        if eager:
            tails.append(
                asyncio.ensure_future(_read_to_the_end(stream, record["failures"]))
            )
    return tails


async def _warm_up(runner: Any, service: Any, name: str, turns: int) -> None:
    """One short untimed session that compacts once, on the same runner and
    service: lazy imports, the first connections and the package's lock
    table belong to a process's first turn (measured on its own elsewhere),
    not to a long session's."""
    import adk_compaction_backport as acb
    from adk_compaction_backport.verify.scenario import USER_ID, message

    session = await service.create_session(app_name=name, user_id=USER_ID)
    for turn in range(1, turns + 1):
        stream = runner.run_async(
            user_id=USER_ID, session_id=session.id, new_message=message(0, turn)
        )
        await _read_to_the_end(stream, [])
    await acb.drain(timeout=120)


async def _sessions(spec: Dict[str, Any], kind: str, url: str, length: int) -> Dict:
    """``spec["sessions"]`` sessions of ``length`` events, their turns at once."""
    from google.adk.runners import Runner

    import adk_compaction_backport as acb
    from adk_compaction_backport.verify.fake_model import SummarizerControl, make_app
    from adk_compaction_backport.verify.scenario import (
        USER_ID,
        let_background_work_finish,
    )

    w = spec["workload"]
    control = SummarizerControl(delay=w["summarizer_delay"])
    name = f"long_{uuid.uuid4().hex[:8]}"
    app = make_app(
        control,
        interval=w["interval"],
        overlap=w["overlap"],
        reply_delay=w["reply_delay"],
        name=name,
    )
    service = session_service(kind, url)
    runner = Runner(app=app, session_service=service)
    ids, prefill_s = [], time.perf_counter()
    for _ in range(spec.get("sessions", 1)):
        session = await service.create_session(app_name=name, user_id=USER_ID)
        await prefill(service, session, length, w["interval"], w["overlap"])
        ids.append(session.id)
    prefill_s = time.perf_counter() - prefill_s
    await _warm_up(runner, service, name, w["interval"] + 1)
    calls_before = control.calls
    reads = CountedReads(service)
    record: Dict[str, Any] = {"turn_ms": [], "failures": []}
    cpu, wall = time.process_time(), time.perf_counter()
    tails = await asyncio.gather(*(_turns(runner, i, spec, record) for i in ids))
    await asyncio.gather(*(tail for group in tails for tail in group))
    await acb.drain(timeout=120)
    await let_background_work_finish(120)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    turns = spec["turns"] * len(ids)
    summaries = 0
    for session_id in ids:
        stored = await reads._get(app_name=name, user_id=USER_ID, session_id=session_id)
        summaries += sum(
            getattr(e.actions, "compaction", None) is not None
            and e.invocation_id != PREFILLED_SUMMARY
            for e in stored.events
        )
    return {
        "sessions": len(ids),
        "prefill_s": prefill_s,
        "client": spec.get("client", "sequential"),
        "turn_ms": record["turn_ms"],
        "turns_per_s": turns / wall,
        "cpu_s_per_turn": cpu / turns,
        "failed_turns": len(record["failures"]),
        "failures": record["failures"][:5],
        "summaries": summaries,
        "summarizer_calls": control.calls - calls_before,
        "package_reads": reads.package,
        "full_package_reads": reads.full_package_reads,
        "runner_reads": reads.runner,
    }


def _measure(spec: Dict[str, Any], run: Dict[str, Any]) -> Dict[str, Any]:
    from devtools.databases import fresh_database

    kind = run["kind"]
    storage = "sqlite" if kind == SQLITE_SERVICE else kind
    with fresh_database(storage, spec["postgres_url"]) as url:
        return asyncio.run(_sessions({**spec, **run}, kind, url, run["events"]))


def main(argv: Optional[List[str]] = None) -> int:
    spec_path, out_path = argv or sys.argv[1:]
    spec = json.loads(Path(spec_path).read_text())
    warnings.simplefilter("ignore")
    import google.adk.runners  # noqa: F401 - the start-up hook patches here

    import adk_compaction_backport as acb

    runs = measure_each(spec, _measure)
    output = {"status": acb.status().as_dict(), "runs": runs}
    Path(out_path).write_text(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
