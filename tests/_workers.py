"""The client's side of ``_mp_worker.py`` processes (a runner each, one database)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

HERE = Path(__file__).parent


class Worker:
    """The client's side of one worker process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._ids = itertools.count(1)
        self._waiting: Dict[Tuple[int, str], asyncio.Future] = {}
        self._reader = asyncio.ensure_future(self._read())
        self.last_invocation_id: Optional[str] = None  # of the last eager turn

    @classmethod
    async def start(cls, stderr: Path) -> Worker:
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        with stderr.open("w") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "_mp_worker.py"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
                env=env,
                cwd=str(HERE),
            )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            message = json.loads(line)
            future = self._future(message["id"], message["kind"])
            if not future.done():
                future.set_result(message)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(EOFError("the worker exited"))

    def _future(self, number: int, kind: str) -> asyncio.Future:
        return self._waiting.setdefault(
            (number, kind), asyncio.get_running_loop().create_future()
        )

    def send(self, op: str, **args: Any) -> int:
        number = next(self._ids)
        assert self.process.stdin is not None
        line = json.dumps({"id": number, "op": op, **args}) + "\n"
        self.process.stdin.write(line.encode())
        return number

    async def result(self, number: int) -> Any:
        message = await asyncio.wait_for(self._future(number, "result"), 120)
        if "error" in message:
            trace = message.get("trace", "")
            raise RuntimeError(f"worker: {message['error']}\n{trace}".rstrip())
        return message["value"]

    async def call(self, op: str, **args: Any) -> Any:
        return await self.result(self.send(op, **args))

    async def eager_turn(self, session: str, text: str) -> asyncio.Future:
        """Send a turn; return at its final reply with the end of its stream."""
        number = self.send("turn", session=session, text=text, eager=True)
        done = asyncio.ensure_future(self.result(number))
        final = self._future(number, "final")
        await asyncio.wait([final, done], return_when=asyncio.FIRST_COMPLETED)
        self.last_invocation_id = (
            final.result().get("invocation") if final.done() else None
        )
        return done

    async def kill(self) -> None:
        """SIGKILL: the worker gets no chance to clean anything up."""
        self.process.kill()
        await self.process.wait()
        await self._reader

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 60)
        except asyncio.TimeoutError:
            self.process.kill()
        await self._reader
