"""Data: which google-adk releases we claim, and the code we checked in each.

A fingerprint is the first 16 hex digits of the SHA-256 of a function's source
(``inspect.getsource``). ``python -m adk_compaction_backport fingerprints``
prints them for the installed release. Each maps to a variant label that a
family adapter may use to choose a patch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class FamilyGuard:
    name: str
    releases: SpecifierSet
    adapter: str
    fingerprints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


_RUNNERS = "google.adk.runners"
_DATABASE = "google.adk.sessions.database_session_service"
_CONTENTS = "google.adk.flows.llm_flows.contents"

FAMILIES: Tuple[FamilyGuard, ...] = (
    FamilyGuard(
        name="1.16",
        releases=SpecifierSet(">=1.16.0,<1.19.0"),
        adapter="adk_compaction_backport.families.v1_16",
        fingerprints={
            f"{_RUNNERS}._run_compaction_for_sliding_window": {
                "9d709263d2ddae3c": "all"
            },
            "google.adk.apps.compaction._run_compaction_for_sliding_window": {
                "9d709263d2ddae3c": "all"
            },
            f"{_RUNNERS}.Runner.run_async": {
                "577e063afe20707b": "1.16",
                "438bc000fc580ae1": "1.17-1.18",
            },
            f"{_RUNNERS}.Runner._new_invocation_context": {"48664686cf5759f1": "all"},
            f"{_RUNNERS}.Runner._exec_with_plugin": {"b92aa34ec4272548": "all"},
            f"{_RUNNERS}.Runner.run": {"d4edad8babd55f62": "all"},
            f"{_RUNNERS}.Runner._setup_context_for_new_invocation": {
                "1f8bdf266d830a44": "all"
            },
            f"{_RUNNERS}.Runner._setup_context_for_resumed_invocation": {
                "4d41bc3a911ce61f": "1.16",
                "87cb3abcde49d60a": "1.17-1.18",
            },
            f"{_CONTENTS}._process_compaction_events": {"e2eebd3cc75e6a69": "all"},
            f"{_CONTENTS}._get_contents": {
                "d6ff24c1386aabb9": "1.16",
                "8daac812bd93d380": "1.17-1.18",
            },
            f"{_DATABASE}.DatabaseSessionService.append_event": {
                "4af23bc2a4a6515f": "1.16",
                "21a7a13bcc298817": "1.17-1.18",
            },
            f"{_DATABASE}.StorageEvent.to_event": {
                "4b1ad19da96a01f1": "typed-actions",
                "cd271c8c8f7c5c67": "typed-actions",
                "b1f9d6bd4db184fd": "dict-actions",
            },
        },
    ),
)

NOT_CLAIMED = (
    "releases outside 1.16.0-1.18.x are not claimed yet: later releases run "
    "compaction differently and need their own, separately checked adapter"
)


def claimed_releases() -> str:
    return ", ".join(str(f.releases) for f in FAMILIES)


def family_for(version: Optional[str]) -> Optional[FamilyGuard]:
    if version is None:
        return None
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    for family in FAMILIES:
        if family.releases.contains(parsed, prereleases=True):
            return family
    return None
