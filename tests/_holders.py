"""Another process holding a session's cross-process lock or a turn's claim."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


class Holder:
    """``_lock_holder.py`` holding one session's lock (or, given ``turn``, the
    claim of that turn's compaction) in another process."""

    def __init__(
        self,
        spec: str,
        session_id: str,
        app_name: str = "app",
        user_id: str = "user",
        turn: str = "",
    ) -> None:
        script = str(HERE / "_lock_holder.py")
        self.process = subprocess.Popen(
            [sys.executable, script, spec, session_id, app_name, user_id, turn],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(HERE),
        )

    def said(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.said() == "released"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
