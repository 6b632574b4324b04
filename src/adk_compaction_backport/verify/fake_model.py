"""Fake LLMs: the agent's model and the summarizer, both offline and controllable."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncGenerator, Dict, List, Optional

from google.adk.agents import LlmAgent
from google.adk.apps.app import App, EventsCompactionConfig
from google.adk.apps.llm_event_summarizer import LlmEventSummarizer
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_response import LlmResponse
from google.genai import types
from pydantic import Field

APP_NAME = "compaction_verify"
REPLY_PREFIX = "reply to "


def _text(role: str, text: str) -> types.Content:
    return types.Content(role=role, parts=[types.Part(text=text)])


def _response(text: str) -> LlmResponse:
    """A model reply with token counts, as real models report them."""
    usage = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=1, candidates_token_count=1, total_token_count=2
    )
    return LlmResponse(content=_text("model", text), usage_metadata=usage)


def _last_user_text(llm_request: Any) -> str:
    for content in reversed(llm_request.contents or []):
        if content.role == "user" and content.parts and content.parts[0].text:
            return content.parts[0].text
    return ""


def _texts(llm_request: Any) -> List[str]:
    return [
        part.text
        for content in llm_request.contents or []
        for part in content.parts or []
        if part.text
    ]


class EchoModel(BaseLlm):
    """The agent's model: answers ``reply to <last user text>``."""

    model: str = "fake-echo"
    delay: float = 0.0
    transcript: List[List[str]] = Field(default_factory=list)
    """The texts of each request's contents: what the model was shown."""

    async def generate_content_async(
        self, llm_request: Any, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.transcript.append(_texts(llm_request))
        if self.delay:
            await asyncio.sleep(self.delay)
        yield _response(REPLY_PREFIX + _last_user_text(llm_request))


class SummarizerControl:
    """Latency, failure and an optional gate for the fake summarizer.

    ``hold()`` makes every summarizer call wait on an ``asyncio.Event`` until
    the test releases it: races are staged, not hoped for.
    """

    def __init__(
        self, delay: float = 0.0, fail: bool = False, echo: bool = False
    ) -> None:
        self.delay = delay
        self.fail = fail
        # Quote what was summarized: a test can then tell where its text goes.
        self.echo = echo
        self.calls = 0
        self.answered: Dict[int, float] = {}
        """``perf_counter()`` when summary #N was handed back, by N."""
        self.gate: Optional[asyncio.Event] = None
        self._called: Optional[asyncio.Event] = None

    def hold(self) -> asyncio.Event:
        self.gate = asyncio.Event()
        return self.gate

    async def wait_for_calls(self, count: int, timeout: float = 60.0) -> None:
        """Return once the summarizer has been entered ``count`` times in all.

        Raises ``TimeoutError`` after ``timeout`` seconds: a release that never
        compacts must fail a test, not hang it.
        """
        await asyncio.wait_for(self._entered(count), timeout)

    async def _entered(self, count: int) -> None:
        while self.calls < count:
            self._called = self._called or asyncio.Event()
            self._called.clear()
            await self._called.wait()

    async def enter(self) -> int:
        self.calls += 1
        number = self.calls
        if self._called is not None:
            self._called.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("injected summarizer failure")
        return number


class SummaryModel(BaseLlm):
    """The summarizer's model: ``summary #N`` after the control lets it."""

    model: str = "fake-summarizer"
    control: Any = None

    async def generate_content_async(
        self, llm_request: Any, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        number = await self.control.enter()
        text = f"summary #{number}"
        if self.control.echo:
            text += " of: " + " | ".join(_texts(llm_request))
        self.control.answered[number] = time.perf_counter()
        yield _response(text)


def make_app(
    control: SummarizerControl,
    *,
    interval: int = 2,
    overlap: int = 1,
    reply_delay: float = 0.0,
    compaction: bool = True,
    name: str = APP_NAME,
) -> App:
    """An app whose agent writes session state each turn (``output_key``)."""
    agent = LlmAgent(
        name="assistant",
        model=EchoModel(delay=reply_delay),
        instruction="Answer briefly.",
        output_key="last_reply",
    )
    config = None
    if compaction:
        config = EventsCompactionConfig(
            summarizer=LlmEventSummarizer(llm=SummaryModel(control=control)),
            compaction_interval=interval,
            overlap_size=overlap,
        )
    return App(name=name, root_agent=agent, events_compaction_config=config)
