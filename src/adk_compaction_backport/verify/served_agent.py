"""An agents directory for ``adk web`` / ``adk api_server`` with the fake models.

The server loads ``<agents_dir>/<name>/agent.py`` and serves its ``app`` (an
``App`` with ``events_compaction_config``; every release that compacts loads
an ``App`` exposed as ``app``), so the race can be reproduced against a real
server, offline. The agent's name must be the folder's name: the server looks
sessions up by the URL's app name and the runner by ``App.name``.
"""

from __future__ import annotations

import keyword
from pathlib import Path
from typing import Optional

DEFAULT_AGENT = "compaction_verify"

_AGENT_PY = '''\
"""Written by adk_compaction_backport.verify.served_agent (fake models, offline)."""

from adk_compaction_backport.verify.served_agent import served_app

app = served_app(
    {name!r},
    interval={interval!r},
    overlap={overlap!r},
    summarizer_delay={summarizer_delay!r},
    reply_delay={reply_delay!r},
    calls_file={calls_file!r},
)
root_agent = app.root_agent
'''


def write_agents_dir(
    agents_dir: Path,
    name: str = DEFAULT_AGENT,
    *,
    interval: int = 2,
    overlap: int = 1,
    summarizer_delay: float = 0.5,
    reply_delay: float = 0.25,
    calls_file: Optional[Path] = None,
) -> Path:
    """Write ``agents_dir/name/{__init__,agent}.py``; return the agent's folder.

    ``calls_file``: the summarizer appends a line per call there, so a client
    outside the server process can count summarizer calls.
    """
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"the agent name must be a Python identifier: {name!r}")
    folder = Path(agents_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("from . import agent  # noqa: F401\n")
    (folder / "agent.py").write_text(
        _AGENT_PY.format(
            name=name,
            interval=interval,
            overlap=overlap,
            summarizer_delay=summarizer_delay,
            reply_delay=reply_delay,
            calls_file=str(calls_file) if calls_file else None,
        )
    )
    return folder


def served_app(
    name: str,
    *,
    interval: int,
    overlap: int,
    summarizer_delay: float,
    reply_delay: float,
    calls_file: Optional[str] = None,
):  # -> google.adk.apps.App (imported lazily: google-adk is slow to import)
    """The ``verify`` app, named after its folder, for a server to load."""
    from adk_compaction_backport.verify.fake_model import SummarizerControl, make_app

    control = SummarizerControl(delay=summarizer_delay)
    if calls_file:
        enter = control.enter

        async def counted_enter() -> int:
            with open(calls_file, "a") as calls:
                calls.write(f"{name}\n")
            return await enter()

        control.enter = counted_enter  # type: ignore[method-assign]
    return make_app(
        control,
        interval=interval,
        overlap=overlap,
        reply_delay=reply_delay,
        name=name,
    )


def count_calls(calls_file: Path) -> int:
    """Summarizer calls recorded in ``calls_file`` (0 when there were none)."""
    try:
        return len(Path(calls_file).read_text().splitlines())
    except FileNotFoundError:
        return 0
