"""What one run covers: workload, releases, sides, databases, clients."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

REPO = Path(__file__).resolve().parent.parent
PATCHES = REPO / "patches"

# The three choices a user has, per google-adk release.
SIDES = ("released", "package", "patched")
# Server rows only: the package with its cross-process lock turned off
# (``ADK_COMPACTION_BACKPORT_CROSS_PROCESS=0``), what the lock buys.
LOCK_OFF = "package_lock_off"
SIDE_LABELS = {
    "released": "released",
    "package": "+ package",
    "patched": "patched (patches/)",
    LOCK_OFF: "+ package, lock off",
}
# ``sqlite`` and ``postgresql``: ``DatabaseSessionService``; ``sqlite_service``:
# ``SqliteSessionService`` on a file (1.19+; not in the default run).
DATABASES = ("sqlite", "postgresql", "sqlite_service")
DEFAULT_DATABASES = ("sqlite", "postgresql")
CLIENTS = ("sequential", "eager")
RELEASES = ("1.18.0", "1.39.1", "2.13.0")
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class WorkloadSpec:
    """The scenario's knobs (``verify.scenario.Workload`` minus client)."""

    sessions: int = 3
    turns: int = 8  # enough for 1.18's crash to show: a turn after a stored summary
    interval: int = 2
    overlap: int = 1
    summarizer_delay: float = 0.5
    reply_delay: float = 0.1

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def warm_up_workload(workload: Mapping[str, Any]) -> Any:
    """One quick untimed session that compacts once (lazy imports, the first
    connections), on a spec's ``workload``; its figures are dropped.

    Called in the side's interpreter, where the package is installed.
    """
    from adk_compaction_backport.verify.scenario import Workload

    return Workload.from_mapping(
        workload,
        sessions=1,
        turns=workload["interval"] + 1,
        summarizer_delay=0.0,
        reply_delay=0.0,
        client="sequential",
    )


@dataclass(frozen=True)
class Rounds:
    """How many alternations each overhead ratio takes."""

    startup: int = 40
    imports: int = 4
    turn: int = 30
    turn_block: int = 5


@dataclass
class Plan:
    workload: WorkloadSpec
    rounds: Rounds
    releases: List[str]
    sides: List[str]
    databases: List[str]
    clients: List[str]
    postgres_url: str
    out: Path
    here: bool = False
    venv_python: Optional[str] = None
    cache: Path = field(default_factory=lambda: REPO / ".bench")
    chart: bool = True
    # ``--workers``: real ``adk api_server`` processes per row (e.g. [1, 2]);
    # empty: no server rows (the default run does not start servers).
    workers: List[int] = field(default_factory=list)


def has_series(release: str) -> bool:
    """Whether ``patches/`` holds an upstream series for this release."""
    return any((PATCHES / f"v{release}").glob("*.patch"))


# The server rows compare what a user can deploy today: released google-adk,
# with and without the package (``patches/`` fix races within one process),
# and the package without its cross-process lock (run with the package side).
SERVER_SIDES = ("released", "package")


def server_sides(plan: Plan) -> List[str]:
    sides = [s for s in plan.sides if s in SERVER_SIDES]
    return [*sides, LOCK_OFF] if "package" in sides else sides


def sides_for(plan: Plan, release: str) -> List[str]:
    """The plan's sides that exist for a release (no series, no patched side)."""
    return [s for s in plan.sides if s != "patched" or has_series(release)]
