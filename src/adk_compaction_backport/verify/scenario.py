"""Run S sessions x T turns against google-adk and report what went wrong.

Clients:
* ``sequential``: reads every stream to its end before the next message;
* ``eager``: sends the next message as soon as the final reply arrives, while
  the stream is still open (what chat front ends do).
APIs: ``async`` (``Runner.run_async``) or ``sync`` (``Runner.run`` in threads).

Each turn is timed twice (for ``bench/``): message sent to final reply (what
the user waits for) and message sent to the end of the stream (what holds the
client's connection).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any, List, Mapping, Optional, Set

from google.adk.runners import Runner
from google.genai import types

from adk_compaction_backport.verify.analysis import (
    check_summaries,
    expected_ranges,
    inspect_session,
)
from adk_compaction_backport.verify.fake_model import SummarizerControl, make_app

USER_ID = "user"


@dataclass
class Workload:
    sessions: int = 4
    turns: int = 8
    interval: int = 2
    overlap: int = 1
    summarizer_delay: float = 0.5
    reply_delay: float = 0.0
    client: str = "eager"
    api: str = "async"
    compaction: bool = True
    """False: the same app without ``events_compaction_config`` (a baseline)."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **changes: Any) -> Workload:
        """The workload ``values`` names (other keys ignored), then ``changes``.

        One way for the command line (``vars(args)``), the benchmark's specs
        and the tests: a key that is not a field (``db_url``, ``workers``) is
        someone else's, and a field ``values`` omits keeps its default.
        """
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        return cls(**{**known, **changes})


@dataclass
class Report:
    """Counts that matter to a user; ``ok`` when the fix's promises hold."""

    workload: dict
    turns: int = 0
    turns_failed: int = 0
    user_messages_expected: int = 0
    user_messages_stored: int = 0
    replies_stored: int = 0
    summaries_expected: int = 0
    summaries_stored: int = 0
    summaries_duplicated: int = 0
    summaries_unexpected: int = 0
    summaries_missing: int = 0
    summarizer_calls: int = 0
    errors: List[str] = field(default_factory=list)
    turn_latencies: List[float] = field(default_factory=list)
    """Seconds from message sent to final reply, one per turn that got one."""
    stream_latencies: List[float] = field(default_factory=list)
    """Seconds from message sent to the end of the turn's stream."""
    summary_write_latencies: List[float] = field(default_factory=list)
    """Seconds from the summarizer's answer to its summary stored."""

    @property
    def user_messages_lost(self) -> int:
        return self.user_messages_expected - self.user_messages_stored

    @property
    def ok(self) -> bool:
        return (
            self.turns_failed == 0
            and self.user_messages_lost == 0
            and self.summaries_stored == self.summaries_expected
            and self.summaries_duplicated == 0
            and self.summaries_unexpected == 0
            and self.summarizer_calls == self.summaries_expected
            and not self.errors
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data["user_messages_lost"] = self.user_messages_lost
        data["ok"] = self.ok
        return data


class _ErrorLog(logging.Handler):
    """Collects warnings from asyncio, google-adk and this package."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in (
            "asyncio",
            "google_adk",
            "adk_compaction_backport",
        ):
            first = record.getMessage().splitlines()[0] if record.getMessage() else ""
            if record.exc_info and record.exc_info[1] is not None:
                first += f" [{record.exc_info[1]!r}]"
            self.lines.append(f"{record.name}: {first}"[:300])


class _TurnClock:
    """Times one turn from the moment its message is sent."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._sent = time.perf_counter()
        self._replied = False

    def final_reply(self) -> None:
        if not self._replied:
            self._replied = True
            self._report.turn_latencies.append(time.perf_counter() - self._sent)

    def stream_end(self) -> None:
        self.final_reply()  # a stream that ended without one: its end is the reply
        self._report.stream_latencies.append(time.perf_counter() - self._sent)


def _time_summary_writes(
    service: Any, control: SummarizerControl, report: Report
) -> None:
    """Record how long each summary takes from its summarizer to storage.

    Wraps this one service object, so the released, patched and packaged sides
    are timed alike: whoever writes the summary goes through it.
    """
    append_event = service.append_event

    async def timed_append_event(session: Any, event: Any) -> Any:
        stored = await append_event(session=session, event=event)
        number = _summary_number(event)
        answered = control.answered.get(number) if number is not None else None
        if answered is not None:
            report.summary_write_latencies.append(time.perf_counter() - answered)
        return stored

    service.append_event = timed_append_event


def _summary_number(event: Any) -> Optional[int]:
    """N of the fake summarizer's "summary #N", for a compaction event."""
    compaction = getattr(getattr(event, "actions", None), "compaction", None)
    content = getattr(compaction, "compacted_content", None)
    text = content.parts[0].text if content is not None and content.parts else ""
    if not text or not text.startswith("summary #"):
        return None
    digits = text[len("summary #") :].split(" ", 1)[0]
    return int(digits) if digits.isdigit() else None


def _is_final_reply(event: Any) -> bool:
    return event.author != "user" and event.is_final_response()


def message(session_no: int, turn: int) -> types.Content:
    return types.Content(
        role="user", parts=[types.Part(text=f"s{session_no} turn {turn}")]
    )


async def _sequential_turn(
    runner: Runner,
    session_id: str,
    content: types.Content,
    clock: Optional[_TurnClock] = None,
) -> None:
    async for event in runner.run_async(
        user_id=USER_ID, session_id=session_id, new_message=content
    ):
        if clock is not None and _is_final_reply(event):
            clock.final_reply()
    if clock is not None:
        clock.stream_end()


async def _eager_turn(
    runner: Runner,
    session_id: str,
    content: types.Content,
    clock: Optional[_TurnClock] = None,
) -> asyncio.Task:
    """Read up to the final reply; leave the rest of the stream to a task."""
    stream = runner.run_async(
        user_id=USER_ID, session_id=session_id, new_message=content
    )
    async for event in stream:
        if _is_final_reply(event):
            if clock is not None:
                clock.final_reply()
            break
    return asyncio.ensure_future(_finish(stream, clock))


async def _finish(stream: Any, clock: Optional[_TurnClock] = None) -> None:
    async for _ in stream:
        pass
    if clock is not None:
        clock.stream_end()


def _sync_turn(
    runner: Runner,
    session_id: str,
    content: types.Content,
    final_reply: Optional[threading.Event] = None,
    clock: Optional[_TurnClock] = None,
) -> None:
    for event in runner.run(
        user_id=USER_ID, session_id=session_id, new_message=content
    ):
        if _is_final_reply(event):
            if clock is not None:
                clock.final_reply()
            if final_reply is not None:
                final_reply.set()
    if clock is not None:
        clock.stream_end()
    if final_reply is not None:
        final_reply.set()


async def _eager_sync_turn(
    runner: Runner,
    session_id: str,
    content: types.Content,
    clock: Optional[_TurnClock] = None,
) -> asyncio.Future:
    """``Runner.run`` in a thread; the next message goes at the final reply."""
    loop = asyncio.get_running_loop()
    final_reply = threading.Event()
    rest = loop.run_in_executor(
        None, _sync_turn, runner, session_id, content, final_reply, clock
    )
    await loop.run_in_executor(None, final_reply.wait)
    return rest


async def _drive_session(
    runner: Runner, workload: Workload, session_no: int, session_id: str, report: Report
) -> None:
    tails: List[asyncio.Future] = []
    for turn in range(1, workload.turns + 1):
        content = message(session_no, turn)
        report.turns += 1
        clock = _TurnClock(report)
        try:
            if workload.api == "sync" and workload.client == "eager":
                tails.append(await _eager_sync_turn(runner, session_id, content, clock))
            elif workload.api == "sync":
                await asyncio.get_running_loop().run_in_executor(
                    None, _sync_turn, runner, session_id, content, None, clock
                )
            elif workload.client == "eager":
                tails.append(await _eager_turn(runner, session_id, content, clock))
            else:
                await _sequential_turn(runner, session_id, content, clock)
        except Exception as error:
            report.turns_failed += 1
            report.errors.append(
                f"turn {turn} of session {session_no}: {error!r}"[:300]
            )
    for turn, outcome in enumerate(
        await asyncio.gather(*tails, return_exceptions=True), 1
    ):
        if isinstance(outcome, BaseException):
            report.turns_failed += 1
            report.errors.append(
                f"stream end of turn {turn}, session {session_no}: {outcome!r}"[:300]
            )


async def let_background_work_finish(timeout: float) -> Set[asyncio.Future]:
    """Wait for every other task (upstream's own compaction tasks included).

    Returns the tasks still running when ``timeout`` ran out.
    """
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if not others:
        return set()
    _, pending = await asyncio.wait(others, timeout=timeout)
    return pending


async def run_workload(
    db_url: str,
    workload: Workload,
    app_name: str = "",
    session_service: Optional[Any] = None,
) -> Report:
    """Run the workload on ``db_url`` and inspect what was stored.

    ``session_service``: use this one instead of a ``DatabaseSessionService``
    on ``db_url`` (``verify --db-url`` picks the service as ``adk web`` does).
    """
    control = SummarizerControl(delay=workload.summarizer_delay)
    app = make_app(
        control,
        interval=workload.interval,
        overlap=workload.overlap,
        reply_delay=workload.reply_delay,
        compaction=workload.compaction,
        name=app_name or "compaction_verify",
    )
    # Sync clients hold a thread per open stream plus one waiting for its reply.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=4 * workload.sessions + 4)
    )
    service = session_service or _database_session_service(db_url)
    runner = Runner(app=app, session_service=service)
    report = Report(workload=asdict(workload))
    _time_summary_writes(service, control, report)
    errors = _ErrorLog()
    logging.getLogger().addHandler(errors)
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: errors.lines.append(
        f"thread: {args.exc_value!r}"
    )
    try:
        ids = [f"session-{uuid.uuid4().hex[:12]}" for _ in range(workload.sessions)]
        for session_id in ids:
            await service.create_session(
                app_name=app.name, user_id=USER_ID, session_id=session_id
            )
        await asyncio.gather(
            *(
                _drive_session(runner, workload, n, sid, report)
                for n, sid in enumerate(ids)
            )
        )
        await let_background_work_finish(
            timeout=30 + 4 * workload.summarizer_delay * workload.turns
        )
        gc.collect()  # surfaces "Task exception was never retrieved"
        await asyncio.sleep(0)
        _inspect(report, workload, [await _load(service, app.name, s) for s in ids])
    finally:
        threading.excepthook = previous_hook
        logging.getLogger().removeHandler(errors)
    report.summarizer_calls = control.calls
    report.errors.extend(errors.lines)
    return report


def _database_session_service(db_url: str) -> Any:
    """Imported here: SqliteSessionService runs without SQLAlchemy (2.x)."""
    from google.adk.sessions.database_session_service import DatabaseSessionService

    return DatabaseSessionService(db_url=db_url)


async def _load(service: Any, app_name: str, session_id: str) -> Any:
    return await service.get_session(
        app_name=app_name, user_id=USER_ID, session_id=session_id
    )


def _inspect(report: Report, workload: Workload, sessions: List[Any]) -> None:
    expected = (
        expected_ranges(workload.turns, workload.interval, workload.overlap)
        if workload.compaction
        else []
    )
    for n, session in enumerate(sessions):
        findings = inspect_session(session)
        wanted = [f"s{n} turn {t}" for t in range(1, workload.turns + 1)]
        report.user_messages_expected += len(wanted)
        report.user_messages_stored += sum(
            1 for text in wanted if text in findings.user_messages
        )
        report.replies_stored += len(findings.replies)
        check = check_summaries(findings.summary_ranges, expected)
        report.summaries_expected += check.expected
        report.summaries_stored += check.stored
        report.summaries_duplicated += check.duplicated
        report.summaries_unexpected += check.unexpected
        report.summaries_missing += check.missing
