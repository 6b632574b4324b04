"""A worker process for ``test_multiprocess.py``: one runner on a shared database.

It stands for one process of a web app: the package is active through its
start-up hook, as in production. It reads one JSON command per line on stdin
and answers JSON lines on stdout, each carrying the command's ``id``. Commands
run concurrently, so a held turn does not block the command that releases it.
A ``turn`` answers its ``result`` when its stream has ended; an ``eager`` one
also answers ``final`` as soon as the final reply is out (the client may send
its next message then) and reads the rest of its stream in a task of its own,
as a web app that returns the reply and lets the stream finish in the
background does. From 1.19 that rest holds the turn's compaction, so a summary
held here overlaps the turns the client sends to the other process meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from traceback import format_exc
from typing import Any, Dict, List

from google.adk.runners import Runner
from google.adk.sessions import database_session_service as upstream_database
from google.adk.sessions.database_session_service import DatabaseSessionService
from google.genai import types

import adk_compaction_backport as acb
from adk_compaction_backport import _rewind_fence, _turn_order
from adk_compaction_backport._process_locks import CROSS_PROCESS_VARIABLE
from adk_compaction_backport.families import _token_threshold
from adk_compaction_backport.verify.fake_model import SummarizerControl, make_app
from adk_compaction_backport.verify.scenario import USER_ID
from harness import GatedEchoModel, with_token_threshold

DEFAULT_CLAIM_GRACE = _turn_order.CLAIM_GRACE


# Where a gated step is looked up: the sliding-window compaction's order
# (``_turn_order``), or request-time compaction (``request_time:<step>``).
GATED_MODULES = {"": _turn_order, "request_time": _token_threshold}


class Gate:
    """Stops this worker's compactions before one of their cross-process
    steps in ``_turn_order`` (``session_lock``, the session's lock, or
    ``turn_claim``, a turn's claim) or in request-time compaction
    (``request_time:session_lock``), as a slow first lock connection or a busy
    machine does, and tells when one has let go of it."""

    def __init__(self, gated_step: str) -> None:
        where, _, step = gated_step.rpartition(":")
        self.module = GATED_MODULES[where]
        self.step = step
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()
        self.left = asyncio.Event()
        self.real = getattr(self.module, step, None)
        if self.real is None:  # not a step of this build: never reached
            return
        gate = self

        class gated(self.real):  # type: ignore[misc, valid-type]
            async def __aenter__(self) -> Any:
                gate.reached.set()
                await gate.opened.wait()
                return await super().__aenter__()

            async def __aexit__(self, *exc_info: Any) -> None:
                await super().__aexit__(*exc_info)
                gate.left.set()

        setattr(self.module, step, gated)

    def remove(self) -> None:
        if self.real is not None:
            setattr(self.module, self.step, self.real)
        self.opened.set()


class Hold:
    """Holds the next write of this worker's service once, at one point of
    upstream's ``DatabaseSessionService.append_event`` (1.27.5 and later):
    ``before_check``, before it reads the session's revision (on entering its
    in-process lock), or ``after_check_read``, right after that read (before
    it compares and writes: on SQLite nothing is locked then, and another
    process's write that commits meanwhile goes unseen)."""

    def __init__(self, service: Any, where: str) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()
        hold = self
        if where == "before_check":
            real_lock = service._with_session_lock

            @contextlib.asynccontextmanager
            async def _with_session_lock(**names: Any) -> Any:
                service._with_session_lock = real_lock  # once
                await hold.wait()
                async with real_lock(**names):
                    yield

            service._with_session_lock = _with_session_lock
            return
        real_select = upstream_database._select_required_state

        async def _select_required_state(*args: Any, **kwargs: Any) -> Any:
            upstream_database._select_required_state = real_select  # once
            await hold.wait()
            return await real_select(*args, **kwargs)

        upstream_database._select_required_state = _select_required_state

    async def wait(self) -> None:
        self.reached.set()
        await self.opened.wait()


class FenceWatch:
    """Tells whether this worker's next summary was stored, or first found
    the session's rewind fence held by another process (``_rewind_fence``)."""

    def __init__(self, service: Any) -> None:
        self.stored = asyncio.Event()
        self.waited = asyncio.Event()
        watch = self
        real_append = service.append_event

        async def append_event(session: Any, event: Any) -> Any:
            appended = await real_append(session=session, event=event)
            if event.actions and event.actions.compaction:
                watch.stored.set()
            return appended

        service.append_event = append_event
        real_lock = _rewind_fence.session_lock

        class session_lock(real_lock):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs.setdefault("on_wait", watch.waited.set)
                super().__init__(*args, **kwargs)

        _rewind_fence.session_lock = session_lock
        self._real_lock = real_lock

    def remove(self) -> None:
        _rewind_fence.session_lock = self._real_lock

    async def first(self) -> str:
        """``stored`` or ``waited``, whichever happens first."""
        stored = asyncio.ensure_future(self.stored.wait())
        waited = asyncio.ensure_future(self.waited.wait())
        await asyncio.wait([stored, waited], return_when=asyncio.FIRST_COMPLETED)
        for task in (stored, waited):
            task.cancel()
        return "stored" if self.stored.is_set() else "waited"


class Warnings(logging.Handler):
    """Warnings and errors of this package and of asyncio."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in ("adk_compaction_backport", "asyncio"):
            self.lines.append(record.getMessage())


class Worker:
    def __init__(self) -> None:
        self.control: Any = None
        self.app: Any = None
        self.plain_model: Any = None
        self.runner: Any = None
        self.gate: Any = None
        self.gates: Dict[str, Gate] = {}
        self.hold: Any = None
        self.fence_watch: Any = None
        self.warnings = Warnings()
        logging.getLogger().addHandler(self.warnings)

    def reply(self, command: Dict[str, Any], kind: str, **data: Any) -> None:
        line = json.dumps({"id": command["id"], "kind": kind, **data}, default=str)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def handle(self, command: Dict[str, Any]) -> None:
        try:
            result = await getattr(self, "op_" + command["op"])(command)
        except Exception as error:
            # The traceback too: a turn that fails in CI has to say where.
            self.reply(command, "result", error=repr(error), trace=format_exc())
        else:
            self.reply(command, "result", value=result)

    async def op_open(self, command: Dict[str, Any]) -> Any:
        """Start over on another database (each test has its own).

        ``summarizer_delay``: seconds each summary takes (0: answers at once
        unless held); ``cross_process``: False turns the cross-process lock off
        in this worker; ``pool_pre_ping``: the engine checks a pooled
        connection before use (what an operator sets to ride out a database
        restart).
        """
        if self.runner is not None:
            self.runner.session_service.db_engine.dispose()
        for gate in self.gates.values():
            gate.remove()
        self.gates.clear()
        if self.fence_watch is not None:
            self.fence_watch.remove()
            self.fence_watch = None
        _turn_order.CLAIM_GRACE = command.get("claim_grace", DEFAULT_CLAIM_GRACE)
        self.control = SummarizerControl(
            delay=command.get("summarizer_delay", 0.0), echo=command.get("echo", False)
        )
        self.app = make_app(self.control)
        if command.get("token_threshold"):
            with_token_threshold(
                self.app, command["token_threshold"], command["event_retention_size"]
            )
        self.plain_model = self.app.root_agent.model
        self.warnings.lines.clear()
        os.environ[CROSS_PROCESS_VARIABLE] = (
            "1" if command.get("cross_process", True) else "0"
        )
        options = {"pool_pre_ping": True} if command.get("pool_pre_ping") else {}
        service = DatabaseSessionService(db_url=command["url"], **options)
        self.runner = Runner(app=self.app, session_service=service)
        return acb.status().as_dict()

    async def op_turn(self, command: Dict[str, Any]) -> Any:
        """Run a turn; answer when its stream has ended (``eager``: see above)."""
        content = types.Content(role="user", parts=[types.Part(text=command["text"])])
        stream = self.runner.run_async(
            user_id=USER_ID, session_id=command["session"], new_message=content
        )
        async for event in stream:
            if command.get("eager") and _is_final_reply(event):
                self.reply(command, "final", invocation=event.invocation_id)
                # The rest of the stream (from 1.19: the turn's compaction) is
                # read by another task, as an eager client leaves it.
                await asyncio.ensure_future(_read_to_the_end(stream))
                break
        return None

    async def op_rewind(self, command: Dict[str, Any]) -> Any:
        await self.runner.rewind_async(
            user_id=USER_ID,
            session_id=command["session"],
            rewind_before_invocation_id=command["invocation"],
        )

    async def op_prompts(self, command: Dict[str, Any]) -> Any:
        """What the agent's model was shown, request by request."""
        return self.app.root_agent.model.transcript

    async def op_hold_summarizer(self, command: Dict[str, Any]) -> Any:
        self.gate = self.control.hold()

    async def op_release_summarizer(self, command: Dict[str, Any]) -> Any:
        self.control.gate = None
        self.gate.set()

    async def op_summarizer_entered(self, command: Dict[str, Any]) -> Any:
        await self.control.wait_for_calls(command["calls"])
        return self.control.calls

    async def op_hold_model(self, command: Dict[str, Any]) -> Any:
        self.app.root_agent.model = GatedEchoModel(
            entered=asyncio.Event(), release=asyncio.Event()
        )

    async def op_model_entered(self, command: Dict[str, Any]) -> Any:
        await self.app.root_agent.model.entered.wait()

    async def op_release_model(self, command: Dict[str, Any]) -> Any:
        gated = self.app.root_agent.model
        self.app.root_agent.model = self.plain_model
        gated.release.set()

    async def op_gate(self, command: Dict[str, Any]) -> Any:
        self.gates[command["step"]] = Gate(command["step"])

    async def op_reached(self, command: Dict[str, Any]) -> Any:
        await self.gates[command["step"]].reached.wait()

    async def op_open_gate(self, command: Dict[str, Any]) -> Any:
        self.gates[command["step"]].opened.set()

    async def op_left(self, command: Dict[str, Any]) -> Any:
        await self.gates[command["step"]].left.wait()

    async def op_hold_next_write(self, command: Dict[str, Any]) -> Any:
        """Hold this worker's next write at ``where`` (``Hold``)."""
        self.hold = Hold(self.runner.session_service, command["where"])

    async def op_write_held(self, command: Dict[str, Any]) -> Any:
        await self.hold.reached.wait()

    async def op_release_write(self, command: Dict[str, Any]) -> Any:
        self.hold.opened.set()

    async def op_watch_fence(self, command: Dict[str, Any]) -> Any:
        self.fence_watch = FenceWatch(self.runner.session_service)

    async def op_summary_stored_or_fence_waited(self, command: Dict[str, Any]) -> Any:
        return await self.fence_watch.first()

    async def op_drain(self, command: Dict[str, Any]) -> Any:
        return await acb.drain()

    async def op_cross_process(self, command: Dict[str, Any]) -> Any:
        """Turn the cross-process lock on or off in this worker."""
        os.environ[CROSS_PROCESS_VARIABLE] = "1" if command["on"] else "0"

    async def op_calls(self, command: Dict[str, Any]) -> Any:
        """Summarizer calls since ``open``."""
        return self.control.calls

    async def op_warnings(self, command: Dict[str, Any]) -> Any:
        return self.warnings.lines


def _is_final_reply(event: Any) -> bool:
    return event.author != "user" and event.is_final_response()


async def _read_to_the_end(stream: Any) -> None:
    async for _ in stream:
        pass


async def main() -> None:
    worker = Worker()
    loop = asyncio.get_running_loop()
    running = set()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        task = asyncio.ensure_future(worker.handle(json.loads(line)))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    await acb.drain()


if __name__ == "__main__":
    asyncio.run(main())
