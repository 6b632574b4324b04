"""A google-adk runner on a real database, driven one turn at a time.

Race tests use it to stage an interleaving exactly: the fake summarizer waits
on an ``asyncio.Event`` and the test decides when it answers.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from typing import Any, AsyncGenerator, List, Optional, Tuple

import pytest
from google.adk.runners import Runner
from google.adk.sessions.database_session_service import DatabaseSessionService
from packaging.version import Version

from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._guards import family_for
from adk_compaction_backport.verify.analysis import inspect_session
from adk_compaction_backport.verify.fake_model import (
    EchoModel,
    SummarizerControl,
    make_app,
)
from adk_compaction_backport.verify.scenario import (
    USER_ID,
    let_background_work_finish,
    message,
)
from adk_compaction_backport.verify.urls import uses_async_engine

Range = Tuple[int, int]

# Set by the tox envs that run these tests against google-adk built from
# patches/ (with this package turned off): "upstream-patch".
FIX_UNDER_TEST_VARIABLE = "ADK_FIX_UNDER_TEST"

# Starts the skip reason of a test module written for another release family:
# ``test_unpatched_proof.py`` does not count those as race tests that ran.
OTHER_FAMILY = "written for another release family: "


def fix_under_test() -> Optional[str]:
    """Which fix the tests exercise: "backport", "upstream-patch" or None."""
    if os.environ.get(FIX_UNDER_TEST_VARIABLE) == "upstream-patch":
        return "upstream-patch"
    import adk_compaction_backport as acb

    return "backport" if acb.status().applied else None


# Releases the package does not claim (2.0, 2.1: the no-op env) never compact
# after an invocation: a test that waits for a summary has nothing to wait for.
CLAIMED_ONLY = pytest.mark.skipif(
    family_for(installed_adk_version()) is None,
    reason="a release the package does not claim (no compaction to race)",
)
REWINDS_ONLY = pytest.mark.skipif(
    not hasattr(Runner, "rewind_async"),
    reason=OTHER_FAMILY + "no Runner.rewind_async before google-adk 1.17",
)
ONLY_1_16 = pytest.mark.skipif(
    getattr(family_for(installed_adk_version()), "name", None) != "1.16",
    reason=OTHER_FAMILY + "google-adk 1.16-1.18 only",
)
# From 1.19 a turn's stream ends only after its compaction is stored (before,
# compaction ran after the stream): a test that holds the summarizer reads a
# turn as an eager client does, up to the final reply (``client_turn``).
COMPACTION_ENDS_THE_STREAM = Version(installed_adk_version() or "0") >= Version("1.19")
BACKPORT_ONLY = pytest.mark.skipif(
    fix_under_test() != "backport",
    reason="covers what only the backport package does",
)
# The 2.13.0 series is the stale-write fix alone: an overtaken summary is
# discarded and summaries are written as released; keeping each summary once,
# only where it belongs, is a proposal (patches/v2.13.0/FOLLOW-UP.md).
KEEPS_EACH_SUMMARY = not (
    fix_under_test() == "upstream-patch" and COMPACTION_ENDS_THE_STREAM
)
KEEPING_SUMMARIES_ONLY = pytest.mark.skipif(
    not KEEPS_EACH_SUMMARY,
    reason="keeps each summary once; the 2.13.0 series leaves that to a"
    " proposal (patches/v2.13.0/FOLLOW-UP.md)",
)


def engine_url(database: Any) -> str:
    """The test database's URL with the driver this google-adk release needs."""
    return database.url("async" if uses_async_engine() else "sync")


def service_class(database: Any) -> Tuple[type, dict]:
    """The session service class for ``database`` and its constructor arguments.

    ``sqlite_service``: ``SqliteSessionService`` on a file (1.19+, the default
    of ``adk web``); ``memory``: ``InMemorySessionService``; every other kind:
    ``DatabaseSessionService``.
    """
    if database.kind == "sqlite_service":
        from google.adk.sessions.sqlite_session_service import SqliteSessionService

        return SqliteSessionService, {"db_path": database.raw}
    if database.kind == "memory":
        from google.adk.sessions.in_memory_session_service import (
            InMemorySessionService,
        )

        return InMemorySessionService, {}
    return DatabaseSessionService, {"db_url": engine_url(database)}


def session_service(database: Any) -> Any:
    cls, arguments = service_class(database)
    return cls(**arguments)


class GatedEchoModel(EchoModel):
    """The agent's model, held mid-turn until the test lets it answer.

    By then the turn has loaded the session and stored the user's message.
    """

    entered: Any = None  # asyncio.Event: a turn reached the model
    release: Any = None  # asyncio.Event: the model may answer

    async def generate_content_async(
        self, llm_request: Any, stream: bool = False
    ) -> AsyncGenerator[Any, None]:
        self.entered.set()
        await self.release.wait()
        async for response in super().generate_content_async(llm_request, stream):
            yield response


class CountingEchoModel(EchoModel):
    """Reports as many prompt tokens as the request has contents, so a
    ``token_threshold`` is crossed as a conversation grows, not at once."""

    async def generate_content_async(
        self, llm_request: Any, stream: bool = False
    ) -> AsyncGenerator[Any, None]:
        async for response in super().generate_content_async(llm_request, stream):
            response.usage_metadata.prompt_token_count = len(llm_request.contents or [])
            yield response


def with_token_threshold(app: Any, threshold: int, retention: int) -> Any:
    """``app`` (sliding window) compacting by tokens too, on a counting model."""
    app.root_agent.model = CountingEchoModel()
    app.events_compaction_config.token_threshold = threshold
    app.events_compaction_config.event_retention_size = retention
    return app


class Conversation:
    """One session of the verify app, with turns the test runs explicitly."""

    def __init__(
        self,
        database: Any,
        control: Optional[SummarizerControl] = None,
        session_id: str = "conversation",
    ) -> None:
        self.database = database
        self.control = control or SummarizerControl()
        self.app = make_app(self.control)
        self.service = session_service(database)
        self.runner = Runner(app=self.app, session_service=self.service)
        self.session_id = session_id
        self.turns = 0
        self.tails: List[asyncio.Future] = []  # the ends of client_turn streams
        # Of the last eager turn (and, on 1.16-1.18, client turn).
        self.last_invocation_id: Optional[str] = None

    async def start(self) -> Conversation:
        await self.service.create_session(
            app_name=self.app.name, user_id=USER_ID, session_id=self.session_id
        )
        return self

    def stream(self) -> Any:
        """The next turn's event stream (the caller reads it)."""
        self.turns += 1
        return self.runner.run_async(
            user_id=USER_ID,
            session_id=self.session_id,
            new_message=message(0, self.turns),
        )

    async def turn(self) -> List[Any]:
        """Run the next turn to the end of its stream."""
        return [event async for event in self.stream()]

    async def eager_turn(self) -> asyncio.Future:
        """Read the next turn up to its final reply; a task reads the rest."""
        stream = self.stream()
        async for event in stream:
            if event.author != "user" and event.is_final_response():
                self.last_invocation_id = event.invocation_id
                break
        return asyncio.ensure_future(_read_to_the_end(stream))

    async def client_turn(self) -> asyncio.Future:
        """The next turn, read as a client that never waits for a summary reads it.

        To the end of its stream on 1.16-1.18, up to its final reply from 1.19
        (``COMPACTION_ENDS_THE_STREAM``). The end of the stream is also kept in
        ``tails``; ``finish()`` waits for all of them.
        """
        if COMPACTION_ENDS_THE_STREAM:
            tail = await self.eager_turn()
        else:
            events = await self.turn()
            self.last_invocation_id = events[-1].invocation_id if events else None
            tail = asyncio.get_running_loop().create_future()
            tail.set_result(None)
        self.tails.append(tail)
        return tail

    async def finish(self) -> None:
        """Wait for the end of every ``client_turn`` stream; none may fail."""
        tails, self.tails = self.tails, []
        await asyncio.gather(*tails)

    async def turns_with_summarizer_held(self, turns: int) -> asyncio.Event:
        """Run ``turns`` client turns; return once the first summary waits on the gate.

        The caller sets the returned event to let the summarizer answer (and
        may then ``finish()`` the turns' streams).
        """
        gate = self.control.hold()
        for _ in range(turns):
            await self.client_turn()
        await self.control.wait_for_calls(1)
        return gate

    def sync_turn(self) -> List[Any]:
        """Run the next turn with upstream's synchronous ``Runner.run``."""
        self.turns += 1
        return list(
            self.runner.run(
                user_id=USER_ID,
                session_id=self.session_id,
                new_message=message(0, self.turns),
            )
        )

    def last_prompt(self) -> List[str]:
        """What the agent's model was shown in the latest turn, line by line."""
        return self.app.root_agent.model.transcript[-1]

    async def stored(self) -> Any:
        return await self.service.get_session(
            app_name=self.app.name, user_id=USER_ID, session_id=self.session_id
        )

    async def summary_ranges(self) -> List[Range]:
        return inspect_session(await self.stored()).summary_ranges

    async def next_write_is_newer(self) -> None:
        """Make the next state write move ``update_time`` past earlier reads.

        1.16-1.18 store ``update_time`` with one-second resolution on SQLite
        and MySQL (``DATETIME`` without fractions): a write only makes an older
        ``Session`` stale once the wall clock is in the next second.
        PostgreSQL keeps microseconds, so there is no wait.
        """
        if self.database.kind in ("sqlite", "mysql"):
            now = time.time()
            await asyncio.sleep(math.ceil(now) - now + 0.01)


async def _read_to_the_end(stream: Any) -> None:
    async for _ in stream:
        pass


def assert_late_summary_in_place(shown: List[str]) -> None:
    """Turn 4's prompt after summary #1 (of turns 1-2) landed behind turn 3:
    the summary stands where turns 1-2 were, before turn 3 and its reply."""
    context = "\n".join(shown)
    assert "summary #1" in context
    assert "s0 turn 1" not in context  # replaced by the summary
    assert context.index("summary #1") < context.index("s0 turn 3")
    assert "reply to s0 turn 3" in shown  # not swallowed by the late summary
    assert shown[-1] == "s0 turn 4"


async def background_work_done(timeout: float = 60) -> None:
    """Wait for every other task: upstream's own compaction tasks included."""
    pending = await let_background_work_finish(timeout)
    assert not pending, f"background work still running after {timeout}s: {pending}"
