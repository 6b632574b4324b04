"""End-to-end check of event compaction with an eager chat client.

Runs one session on a real SQLite file with DatabaseSessionService. The
client sends its next message --gap seconds after it sees the final response
of the previous one, while the previous invocation may still be summarizing
(chat UIs do this). The agent model and the summarizer are local fakes with a
fixed latency, so no network or API key is needed. Prints a timestamped log
and what the session holds at the end: failed turns, stored user messages,
summarizer calls and the turns each stored summary covers. Each model request
is logged with the turns and summaries it carries.

With --sync the client uses the synchronous ``Runner.run`` (google-adk 1.x
only), reading each turn on its own thread as a threaded chat server would;
upstream runs every ``Runner.run`` call on its own event loop.

Usage: python e2e_eager_client.py [--turns N] [--summarizer-delay S]
       [--gap S] [--db FILE] [--sync]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncGenerator, List, Optional

import google.adk
from google.adk.agents.llm_agent import LlmAgent
from google.adk.apps.app import App, EventsCompactionConfig
from google.adk.apps.base_events_summarizer import BaseEventsSummarizer
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions, EventCompaction
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions.database_session_service import DatabaseSessionService
from google.genai import types

APP, USER, SESSION = "e2e", "user", "session"
START = time.monotonic()


def log(message: str) -> None:
    """Prints a line stamped with the seconds since start."""
    print(f"[{time.monotonic() - START:6.2f}s] {message}", flush=True)


class SlowModel(BaseLlm):
    """Answers after a short delay, like a fast model."""

    model: str = "slow-model"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        """Yields one answer to the latest user message."""
        await asyncio.sleep(0.1)
        question = llm_request.contents[-1].parts[0].text
        log(f"{question}: the model sees {', '.join(seen(llm_request))}")
        text = f"An answer to {question}. " * 10
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=text)])
        )


def seen(llm_request: LlmRequest) -> List[str]:
    """The user turns and summaries in a model request, in order."""
    found = []
    for content in llm_request.contents:
        for part in content.parts or []:
            text = part.text or ""
            if text.startswith("turn "):
                found.append(text)
            elif "summary " in text:
                found.append(text[text.index("summary ") :].split(".")[0])
    return found


class SlowSummarizer(BaseEventsSummarizer):
    """Summarizes after `delay` seconds, like a summarizer model."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    async def maybe_summarize_events(self, *, events: List[Event]) -> Optional[Event]:
        """Returns a compaction event for `events`."""
        self.calls += 1
        log(f"summarizer call {self.calls}: {len(events)} events")
        await asyncio.sleep(self.delay)
        return Event(
            author="user",
            invocation_id=Event.new_id(),
            actions=EventActions(
                compaction=EventCompaction(
                    start_timestamp=events[0].timestamp,
                    end_timestamp=events[-1].timestamp,
                    compacted_content=types.Content(
                        role="model", parts=[types.Part(text=f"summary {self.calls}")]
                    ),
                )
            ),
        )


def turn_request(text: str) -> dict:
    """The keyword arguments of one user turn, for run_async and run alike."""
    message = types.Content(role="user", parts=[types.Part(text=text)])
    return {"user_id": USER, "session_id": SESSION, "new_message": message}


def note_event(event: Event, text: str, answered: Any) -> None:
    """Signals the turn's final response, as a chat UI would react to it."""
    if event.is_final_response():
        log(f"{text}: final response")
        answered.set()


def note_failure(error: Exception, text: str) -> None:
    log(f"{text}: FAILED {type(error).__name__}: {str(error)[:90]}")


async def turn(runner: Runner, text: str, answered: asyncio.Event) -> None:
    """Runs one turn to the end of its stream, signalling its final response."""
    try:
        async for event in runner.run_async(**turn_request(text)):
            note_event(event, text, answered)
    except Exception as e:  # reported, as a chat UI would
        note_failure(e, text)
        raise
    finally:
        answered.set()


def sync_turn(runner: Runner, text: str, answered: threading.Event) -> None:
    """Runs one turn with the synchronous Runner.run, on the calling thread."""
    try:
        for event in runner.run(**turn_request(text)):
            note_event(event, text, answered)
    except Exception as e:  # reported, as a chat UI would
        note_failure(e, text)
        raise
    finally:
        answered.set()


async def main(turns: int, delay: float, gap: float, db: str, sync: bool) -> None:
    """Runs the eager client and prints what was stored."""
    major = int(google.adk.__version__.split(".")[0])
    if sync and major >= 2:
        raise SystemExit("--sync needs google-adk 1.x (a synchronous engine)")
    url = f"sqlite+aiosqlite:///{db}" if major >= 2 else f"sqlite:///{db}"
    service = DatabaseSessionService(url)
    summarizer = SlowSummarizer(delay)
    app = App(
        name=APP,
        # output_key: every answer is also a session state write.
        root_agent=LlmAgent(
            name="assistant", model=SlowModel(), output_key="last_answer"
        ),
        events_compaction_config=EventsCompactionConfig(
            summarizer=summarizer, compaction_interval=2, overlap_size=0
        ),
    )
    runner = Runner(app=app, session_service=service)
    await service.create_session(app_name=APP, user_id=USER, session_id=SESSION)
    log(
        f"google-adk {google.adk.__version__}, {turns} turns, summarizer"
        f" {delay}s, next message {gap}s after each final response"
        + (", sync Runner.run on a thread per turn" if sync else "")
    )

    loop = asyncio.get_running_loop()
    # A thread per open turn, plus one waiting for its final response.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=2 * turns + 2))
    tasks: List[asyncio.Future] = []
    for i in range(1, turns + 1):
        if sync:
            done = threading.Event()
            tasks.append(
                loop.run_in_executor(None, sync_turn, runner, f"turn {i}", done)
            )
            await loop.run_in_executor(None, done.wait)
        else:
            answered = asyncio.Event()
            tasks.append(asyncio.create_task(turn(runner, f"turn {i}", answered)))
            await answered.wait()
        await asyncio.sleep(gap)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    if pending:
        await asyncio.wait(pending)

    session = await service.get_session(app_name=APP, user_id=USER, session_id=SESSION)
    assert session is not None
    users = [
        (e.timestamp, e.content.parts[0].text)
        for e in session.events
        if e.author == "user" and e.content and not e.actions.compaction
    ]
    ranges = []
    for e in session.events:
        c = e.actions.compaction
        if c:
            # google-adk 1.18-1.21 read a stored compaction back as a dict (#3487).
            c = EventCompaction.model_validate(c) if isinstance(c, dict) else c
            covered = [
                t for ts, t in users if c.start_timestamp <= ts <= c.end_timestamp
            ]
            ranges.append(f"{covered[0]}..{covered[-1]}" if covered else "?")
    failed = sum(1 for r in results if isinstance(r, BaseException))
    log(f"turns failed: {failed} of {turns}")
    log(f"user messages stored: {len(users)} of {turns}")
    log(f"summarizer calls: {summarizer.calls}")
    log(f"summaries stored: {len(ranges)} {ranges}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--summarizer-delay", type=float, default=1.5)
    parser.add_argument("--gap", type=float, default=0.0)
    parser.add_argument("--db", default=os.path.join(tempfile.mkdtemp(), "e2e.db"))
    parser.add_argument("--sync", action="store_true", help="use Runner.run")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.summarizer_delay, args.gap, args.db, args.sync))
