"""Data: which google-adk releases we claim, and the code we checked in each.

A fingerprint is the first 16 hex digits of the SHA-256 of a function's source
(``inspect.getsource``). ``python -m adk_compaction_backport fingerprints``
prints them for the installed release; ``tools/release_fingerprints.py`` reads
them from unpacked wheels, for every release of a family at once. Each maps to
a label: the releases that carry that code, or a variant that a family adapter
uses to choose a patch.
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

from packaging.version import InvalidVersion, Version


class Releases:
    """``>=lowest,<below`` minus the ``major.minor`` series in ``skipped``.

    Not ``packaging.specifiers``, and plain classes rather than dataclasses:
    this module is imported while the app imports google-adk, and both would
    cost milliseconds there (issue #12).
    """

    __slots__ = ("below", "lowest", "skipped")

    def __init__(
        self, lowest: str, below: str, skipped: Tuple[Tuple[int, int], ...] = ()
    ) -> None:
        self.lowest = lowest
        self.below = below
        self.skipped = skipped

    def contains(self, version: Version) -> bool:
        return (
            Version(self.lowest) <= version < Version(self.below)
            and tuple(version.release[:2]) not in self.skipped
        )

    def __str__(self) -> str:
        skipped = "".join(f",!={a}.{b}.*" for a, b in self.skipped)
        return f">={self.lowest},<{self.below}{skipped}"


class FamilyGuard:
    __slots__ = ("adapter", "fingerprints", "name", "releases", "span")

    def __init__(
        self,
        name: str,
        releases: Releases,
        adapter: str,
        span: str = "",  # the releases in words, for messages
        fingerprints: Optional[Mapping[str, Mapping[str, str]]] = None,
    ) -> None:
        self.name = name
        self.releases = releases
        self.adapter = adapter
        self.span = span
        self.fingerprints = fingerprints or {}


_RUNNERS = "google.adk.runners"
_DATABASE = "google.adk.sessions.database_session_service"
_SQLITE = "google.adk.sessions.sqlite_session_service"
_CONTENTS = "google.adk.flows.llm_flows.contents"
_COMPACTION = "google.adk.apps.compaction"

FAMILIES: Tuple[FamilyGuard, ...] = (
    FamilyGuard(
        name="1.16",
        span="1.16.0-1.18.x",
        releases=Releases("1.16.0", "1.19.0"),
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
    FamilyGuard(
        name="1.19",
        span="1.19.0-1.23.x",
        releases=Releases("1.19.0", "1.24.0"),
        adapter="adk_compaction_backport.families.v1_19",
        fingerprints={
            f"{_RUNNERS}._run_compaction_for_sliding_window": {
                "9d709263d2ddae3c": "1.19.0",
                "345f7f28359712eb": "1.20.0-1.23.0",
            },
            f"{_COMPACTION}._run_compaction_for_sliding_window": {
                "9d709263d2ddae3c": "1.19.0",
                "345f7f28359712eb": "1.20.0-1.23.0",
            },
            f"{_RUNNERS}.Runner.run_async": {
                "14dd53d610aaa09b": "1.19.0-1.20.0",
                "f64e4de028389959": "1.21.0-1.22.1",
                "b960de10082243a0": "1.23.0",
            },
            f"{_RUNNERS}.Runner.run": {"dc21ebd9aea2bcd1": "1.19.0-1.23.0"},
            f"{_RUNNERS}.Runner._new_invocation_context": {
                "48664686cf5759f1": "1.19.0-1.23.0",
            },
            f"{_DATABASE}.DatabaseSessionService.append_event": {
                "dc16c2b9517a48bb": "1.19.0",
                "83dc9849cf6081d0": "1.20.0-1.21.0",
                "1a2fadb9eff7d73c": "1.22.0-1.23.0",
            },
            f"{_SQLITE}.SqliteSessionService.append_event": {
                "e79b46963513ffe4": "1.19.0",
                "f180bcc239bdb9a4": "1.20.0-1.23.0",
            },
            f"{_CONTENTS}._process_compaction_events": {
                "624cda87bc9ca691": "drops-late-summaries",
            },
            f"{_DATABASE}.StorageEvent.to_event": {
                "42307d1802b2f59c": "dict-actions",
            },
        },
    ),
    FamilyGuard(
        name="1.24",
        span="1.24.0-1.27.x",
        releases=Releases("1.24.0", "1.28.0"),
        adapter="adk_compaction_backport.families.v1_24",
        fingerprints={
            f"{_RUNNERS}._run_compaction_for_sliding_window": {
                "345f7f28359712eb": "1.24.0-1.24.1",
                "fac7432fd8601684": "1.25.0-1.25.1",
                "9f1c611c22352774": "1.26.0-1.27.5",
            },
            f"{_COMPACTION}._run_compaction_for_sliding_window": {
                "345f7f28359712eb": "1.24.0-1.24.1",
                "fac7432fd8601684": "1.25.0-1.25.1",
                "9f1c611c22352774": "1.26.0-1.27.5",
            },
            f"{_RUNNERS}.Runner.run_async": {
                "b960de10082243a0": "1.24.0-1.25.1",
                "846d1fed1adb161a": "1.26.0",
                "e58549c898a49d88": "1.27.0-1.27.5",
            },
            f"{_RUNNERS}.Runner.run": {"dc21ebd9aea2bcd1": "1.24.0-1.27.5"},
            f"{_RUNNERS}.Runner._new_invocation_context": {
                "48664686cf5759f1": "1.24.0-1.24.1",
                "cda8faea9808fbe6": "1.25.0-1.25.1",
                "ba019aaf0693049a": "1.26.0",
                "c2b0b28911538c16": "1.27.0-1.27.5",
            },
            f"{_DATABASE}.DatabaseSessionService.append_event": {
                "a819932d6958d656": "1.24.0-1.24.1",
                "40f54c25097af338": "1.25.0-1.26.0",
                "a624792f16e14c80": "1.27.0-1.27.5",
            },
            f"{_SQLITE}.SqliteSessionService.append_event": {
                "f180bcc239bdb9a4": "1.24.0-1.26.0",
                "d316e669d5f23d69": "1.27.1-1.27.5",
            },
            f"{_CONTENTS}._process_compaction_events": {
                "624cda87bc9ca691": "drops-late-summaries",
                "b211d3be36694ce5": "1.25.0-1.27.5",
            },
        },
    ),
    FamilyGuard(
        name="1.28",
        span="1.28.0-2.6.x except 2.0.x and 2.1.x",
        releases=Releases("1.28.0", "2.7.0", ((2, 0), (2, 1))),
        adapter="adk_compaction_backport.families.v1_28",
        fingerprints={
            f"{_RUNNERS}._run_compaction_for_sliding_window": {
                "4cbad85f42d46cd5": "1.28.0-1.31.1",
                "17d4462f14fdf535": "1.32.0-1.33.0",
            },
            f"{_COMPACTION}._run_compaction_for_sliding_window": {
                "4cbad85f42d46cd5": "1.28.0-1.31.1",
                "17d4462f14fdf535": "1.32.0-1.33.0",
                "744826907519aa80": "1.34.0-1.39.1",
                "c7518c9dd425fc1f": "2.2.0",
                "b268402cac87c17a": "2.3.0-2.4.0",
                "7c064bdf7b0e3f13": "2.5.0-2.6.3",
            },
            f"{_RUNNERS}.Runner.run_async": {
                "e58549c898a49d88": "1.28.0-1.33.0",
                "dc86714bcaa092b2": "1.34.0-1.39.1",
                "b0db29db0c61e029": "2.2.0-2.3.0",
                "b431d01e72b47149": "2.4.0",
                "69867b46a164ea11": "2.5.0-2.6.3",
            },
            f"{_RUNNERS}.Runner.run": {
                "dc21ebd9aea2bcd1": "1.28.0-1.39.1",
                "42d09d16d99f37af": "2.2.0",
                "61f5dfda81bc042f": "2.3.0-2.6.3",
            },
            f"{_RUNNERS}.Runner._new_invocation_context": {
                "c2b0b28911538c16": "1.28.0-1.39.1",
                "753f0ac7699a7045": "2.2.0-2.6.3",
            },
            f"{_DATABASE}.DatabaseSessionService.append_event": {
                "783bd5df52442a75": "1.28.0-1.39.1",
                "bebbd4cabe8e720b": "2.2.0",
                "f33d422299184b61": "2.3.0",
                "0c267da0d3f460a4": "2.4.0-2.5.0",
                "9ff1921c746d0739": "2.6.0-2.6.3",
            },
            f"{_SQLITE}.SqliteSessionService.append_event": {
                "d316e669d5f23d69": "1.28.0-1.39.1",
                "731f254ae1e2c52e": "2.2.0-2.5.0",
                "9fef65accf8a406b": "2.6.0-2.6.3",
            },
        },
    ),
    FamilyGuard(
        name="2.7",
        span="2.7.0-2.13.x",
        releases=Releases("2.7.0", "2.14.0"),
        adapter="adk_compaction_backport.families.v2_7",
        fingerprints={
            f"{_COMPACTION}._run_compaction_for_sliding_window": {
                "7c064bdf7b0e3f13": "2.7.0-2.9.2",
                "cd0e31732a819109": "2.10.0-2.11.0",
                "db43a59b882d527f": "2.12.0",
                "9e4865a85488dd3c": "2.13.0",
            },
            f"{_RUNNERS}.Runner.run_async": {
                "e0045ab20b597b06": "2.7.0-2.7.1",
                "6529bf4bf1ff931b": "2.8.0-2.10.0",
                "63aaa8f025f023a9": "2.11.0",
                "50137a07a8e86f98": "2.12.0",
                "d03504c01cd43aec": "2.13.0",
            },
            f"{_RUNNERS}.Runner.run": {
                "0788a6d270fa36be": "2.7.0-2.7.1",
                "faa637472bd89d1e": "2.8.0",
                "5a62f62526b6f34e": "2.9.0-2.9.2",
                "38123b2cc0dc6491": "2.10.0-2.13.0",
            },
            f"{_RUNNERS}.Runner._new_invocation_context": {
                "0ca8053a9a13625a": "2.7.0-2.9.2",
                "77ba914727230a59": "2.10.0",
                "239f4c5e4f545ebb": "2.11.0-2.12.0",
                "5e868bb1dad02155": "2.13.0",
            },
            f"{_DATABASE}.DatabaseSessionService.append_event": {
                "76003ab68dc30864": "2.7.0-2.7.1",
                "6d80f1f0f0a66250": "2.8.0-2.9.2",
                "0e17237201c2fef0": "2.10.0-2.13.0",
            },
            f"{_SQLITE}.SqliteSessionService.append_event": {
                "032e9729bb2e0d34": "2.7.0-2.7.1",
                "bfae39b54a67a2cd": "2.8.0-2.9.2",
                "bf409758427858c6": "2.10.0-2.13.0",
            },
            f"{_RUNNERS}.Runner._run_post_invocation_compaction": {
                "8f6ea550acb54f18": "2.7.0-2.11.0",
                "948bd670b091aee0": "2.12.0-2.13.0",
            },
        },
    ),
)

NOT_CLAIMED = (
    "releases after 2.13.x are not claimed until their code has been checked "
    "(the package leaves them untouched); 2.0.x and 2.1.x do not compact after "
    "an invocation of an LlmAgent, so they have no race to fix"
)


def claimed_releases() -> str:
    return ", ".join(f.span or str(f.releases) for f in FAMILIES)


def family_for(version: Optional[str]) -> Optional[FamilyGuard]:
    if version is None:
        return None
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    for family in FAMILIES:
        if family.releases.contains(parsed):
            return family
    return None
