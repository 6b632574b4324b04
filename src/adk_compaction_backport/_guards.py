"""The families table: every google-adk release family the package claims, as data.

One row per family: its releases, each google-adk function the fix wraps (the
wrapper named by a ``"module:attr"`` string, imported only when the fix is
applied) or only relies on, and the fingerprints of the code we checked. The
start-up hook's watched modules, the guards of ``_activation``, ``python -m
adk_compaction_backport fingerprints`` and ``tools/claim_release.py`` all read
this table. Claiming a release whose code is unchanged widens one ``Releases``
below (``tools/claim_release.py`` writes that edit).

A fingerprint is the first 16 hex digits of the SHA-256 of a function's source
(``inspect.getsource``), mapped to the releases that carry that code (words
for people). A ``Variant`` names the fingerprints where a wrapper is needed
at all (code that some releases of a family fixed upstream).
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Tuple

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

    def words(self) -> str:
        """``1.16.0-1.18.x``: ``below`` is always the next ``major.minor``."""
        major, minor = Version(self.below).release[:2]
        words = f"{self.lowest}-{major}.{minor - 1}.x"
        if self.skipped:
            series = " and ".join(f"{a}.{b}.x" for a, b in self.skipped)
            words += f" except {series}"
        return words

    def __str__(self) -> str:
        skipped = "".join(f",!={a}.{b}.*" for a, b in self.skipped)
        return f">={self.lowest},<{self.below}{skipped}"


class Variant:
    """The fingerprints whose code needs the wrapper (the others are fixed)."""

    __slots__ = ("fingerprints", "name")

    def __init__(self, name: str, *fingerprints: str) -> None:
        self.name = name
        self.fingerprints = frozenset(fingerprints)


class Code:
    """One google-adk function (``"module:path"``) the fix depends on.

    ``wrapper``: ``"module:attr"`` of ``make_wrapper(original) -> wrapper``;
    ``None`` for code we rely on without wrapping it (only its fingerprint is
    checked). ``optional``: absent from some releases of the family (skipped
    there). ``needs_extra``: its module imports an optional dependency
    (SQLAlchemy for ``DatabaseSessionService``); where that cannot be
    imported, nothing in it runs, so there is nothing to check or wrap.
    """

    __slots__ = (
        "fingerprints",
        "needs_extra",
        "optional",
        "target",
        "variant",
        "wrapper",
    )

    def __init__(
        self,
        target: str,
        fingerprints: Mapping[str, str],
        wrapper: Optional[str] = None,
        variant: Optional[Variant] = None,
        optional: bool = False,
        needs_extra: bool = False,
    ) -> None:
        self.target = target
        self.fingerprints = fingerprints
        self.wrapper = wrapper
        self.variant = variant
        self.optional = optional
        self.needs_extra = needs_extra

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def path(self) -> str:
        return self.target.partition(":")[2]

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.path}"

    def __repr__(self) -> str:
        return f"Code({self.target!r}, wrapper={self.wrapper!r})"


def wraps(target: str, wrapper: str, fingerprints: Mapping[str, str], **how) -> Code:
    return Code(target, fingerprints, wrapper, **how)


def relies_on(target: str, fingerprints: Mapping[str, str], **how) -> Code:
    return Code(target, fingerprints, None, **how)


class Family:
    __slots__ = ("code", "name", "releases", "stale_error")

    def __init__(
        self,
        name: str,
        releases: Releases,
        code: Iterable[Code],
        stale_error: str = "adk_compaction_backport.families._common:is_stale_error",
    ) -> None:
        self.name = name
        self.releases = releases
        self.code = tuple(code)
        self.stale_error = stale_error  # ``"module:attr"``: (error) -> bool

    @property
    def span(self) -> str:
        return self.releases.words()

    @property
    def wrapped(self) -> Tuple[Code, ...]:
        return tuple(c for c in self.code if c.wrapper is not None)

    @property
    def relied_on(self) -> Tuple[Code, ...]:
        return tuple(c for c in self.code if c.wrapper is None)

    @property
    def fingerprints(self) -> Dict[str, Mapping[str, str]]:
        """``qualname -> {fingerprint: releases}``."""
        return {c.qualname: c.fingerprints for c in self.code}


_RUNNERS = "google.adk.runners:"
_COMPACTION = "google.adk.apps.compaction:"
_CONTENTS = "google.adk.flows.llm_flows.contents:"
_DATABASE = "google.adk.sessions.database_session_service:"
_SQLITE = "google.adk.sessions.sqlite_session_service:"
_COMPACT = "_run_compaction_for_sliding_window"
_COMMON = "adk_compaction_backport.families._common:"
_AWAITED = "adk_compaction_backport.families._awaited:"
_NODES = "adk_compaction_backport.families._workflow_nodes:"
_NODE_CONTEXT = "google.adk.workflow._llm_agent_wrapper:prepare_llm_agent_context"
_V1_16 = "adk_compaction_backport.families.v1_16:"
_TOKENS = "adk_compaction_backport.families._token_threshold:"
_TOKEN_CHOICE = _COMPACTION + "_events_to_compact_for_token_threshold"
_REQUEST_TIME = "_run_compaction_for_token_threshold_config"
_FLOWS = "google.adk.flows.llm_flows.compaction:"  # to 2.9
_FLOWS_2_10 = "google.adk.flows.llm_flows.context._compaction:"
_DB = {"needs_extra": True}

FAMILIES: Tuple[Family, ...] = (
    # Compaction runs in a background task upstream drops (families/v1_16.py);
    # 1.18 rebuilds stored actions as a ``dict`` (google/adk-python#3487).
    Family(
        name="1.16",
        releases=Releases("1.16.0", "1.19.0"),
        code=(
            wraps(
                _RUNNERS + _COMPACT,  # imported by name into ``runners``
                _V1_16 + "submit_to_coordinator",
                {"9d709263d2ddae3c": "1.16.0-1.18.0"},
            ),
            wraps(
                _RUNNERS + "Runner.run_async",
                _COMMON + "track_turn",
                {"577e063afe20707b": "1.16.0", "438bc000fc580ae1": "1.17.0-1.18.0"},
            ),
            wraps(
                _RUNNERS + "Runner._new_invocation_context",
                _COMMON + "register_fresh_session",
                {"48664686cf5759f1": "1.16.0-1.18.0"},
            ),
            wraps(
                _RUNNERS + "Runner._exec_with_plugin",
                _V1_16 + "compact_when_closed_early",
                {"b92aa34ec4272548": "1.16.0-1.18.0"},
            ),
            wraps(
                _RUNNERS + "Runner.run",
                _COMMON + "drain_before_returning",
                {"d4edad8babd55f62": "1.16.0-1.18.0"},
            ),
            wraps(
                _CONTENTS + "_process_compaction_events",
                _COMMON + "summaries_in_place",
                {"e2eebd3cc75e6a69": "1.16.0-1.18.0"},
            ),
            wraps(
                _DATABASE + "StorageEvent.to_event",
                _COMMON + "typed_actions",
                {
                    "4b1ad19da96a01f1": "1.16.0",
                    "cd271c8c8f7c5c67": "1.17.0",
                    "b1f9d6bd4db184fd": "1.18.0",
                },
                variant=Variant("dict-actions", "b1f9d6bd4db184fd"),
            ),
            # A rewind's write (``Runner.rewind_async``, 1.17+) is fenced
            # against the summaries' (issue #24): stamped before a summary
            # stored first, it would leave that summary counting.
            wraps(
                _DATABASE + "DatabaseSessionService.append_event",
                _COMMON + "fence_rewinds",
                {"4af23bc2a4a6515f": "1.16.0", "21a7a13bcc298817": "1.17.0-1.18.0"},
                variant=Variant("rewinds", "21a7a13bcc298817"),
                **_DB,
            ),
            # They load the session before the first write and run the
            # compaction we hand to the coordinator.
            relies_on(
                _RUNNERS + "Runner._setup_context_for_new_invocation",
                {"1f8bdf266d830a44": "1.16.0-1.18.0"},
            ),
            relies_on(
                _RUNNERS + "Runner._setup_context_for_resumed_invocation",
                {"4d41bc3a911ce61f": "1.16.0", "87cb3abcde49d60a": "1.17.0-1.18.0"},
            ),
            relies_on(_COMPACTION + _COMPACT, {"9d709263d2ddae3c": "1.16.0-1.18.0"}),
            relies_on(
                _CONTENTS + "_get_contents",
                {"d6ff24c1386aabb9": "1.16.0", "8daac812bd93d380": "1.17.0-1.18.0"},
            ),
        ),
    ),
    # Compaction awaited at the end of the stream; ``update_time`` moves on
    # every append from 1.20; the model's context drops a late summary's
    # neighbours (until 1.25); 1.19-1.21 rebuild stored actions as a ``dict``.
    Family(
        name="1.19",
        releases=Releases("1.19.0", "1.24.0"),
        code=(
            wraps(
                _RUNNERS + _COMPACT,  # imported by name into ``runners`` (to 1.33)
                _AWAITED + "compact_through_coordinator",
                {"9d709263d2ddae3c": "1.19.0", "345f7f28359712eb": "1.20.0-1.23.0"},
            ),
            wraps(
                _COMPACTION + _COMPACT,
                _AWAITED + "compact_through_coordinator",
                {"9d709263d2ddae3c": "1.19.0", "345f7f28359712eb": "1.20.0-1.23.0"},
            ),
            wraps(
                _RUNNERS + "Runner.run_async",
                _COMMON + "track_turn",
                {
                    "14dd53d610aaa09b": "1.19.0-1.20.0",
                    "f64e4de028389959": "1.21.0-1.22.1",
                    "b960de10082243a0": "1.23.0",
                },
            ),
            wraps(
                _RUNNERS + "Runner.run",
                _COMMON + "drain_before_returning",
                {"dc21ebd9aea2bcd1": "1.19.0-1.23.0"},
            ),
            wraps(
                _RUNNERS + "Runner._new_invocation_context",
                _COMMON + "register_fresh_session",
                {"48664686cf5759f1": "1.19.0-1.23.0"},
            ),
            wraps(
                _DATABASE + "DatabaseSessionService.append_event",
                _AWAITED + "catch_up_on_summaries",
                {
                    "dc16c2b9517a48bb": "1.19.0",
                    "83dc9849cf6081d0": "1.20.0-1.21.0",
                    "1a2fadb9eff7d73c": "1.22.0-1.23.0",
                },
                **_DB,
            ),
            wraps(
                _CONTENTS + "_process_compaction_events",
                _COMMON + "summaries_in_place",
                {"624cda87bc9ca691": "1.19.0-1.23.0"},
            ),
            wraps(
                _DATABASE + "StorageEvent.to_event",
                _COMMON + "typed_actions",
                {"42307d1802b2f59c": "1.19.0-1.21.0"},
                optional=True,  # moved to ``sessions.schemas`` (and fixed) in 1.22
                **_DB,
            ),
            # What ``adk web`` uses by default; every append moves
            # ``update_time``: the same catch-up.
            wraps(
                _SQLITE + "SqliteSessionService.append_event",
                _AWAITED + "catch_up_on_summaries",
                {"e79b46963513ffe4": "1.19.0", "f180bcc239bdb9a4": "1.20.0-1.23.0"},
                **_DB,
            ),
        ),
    ),
    # A stale write reloads the session and goes on: a summary computed on an
    # old read covers the wrong invocations. 1.24 drops a late summary's
    # neighbours in the model's context (upstream places them from 1.25).
    Family(
        name="1.24",
        releases=Releases("1.24.0", "1.28.0"),
        code=(
            wraps(
                _RUNNERS + _COMPACT,
                _AWAITED + "compact_through_coordinator",
                {
                    "345f7f28359712eb": "1.24.0-1.24.1",
                    "fac7432fd8601684": "1.25.0-1.25.1",
                    "9f1c611c22352774": "1.26.0-1.27.5",
                },
            ),
            wraps(
                _COMPACTION + _COMPACT,
                _AWAITED + "compact_through_coordinator",
                {
                    "345f7f28359712eb": "1.24.0-1.24.1",
                    "fac7432fd8601684": "1.25.0-1.25.1",
                    "9f1c611c22352774": "1.26.0-1.27.5",
                },
            ),
            wraps(
                _RUNNERS + "Runner.run_async",
                _COMMON + "track_turn",
                {
                    "b960de10082243a0": "1.24.0-1.25.1",
                    "846d1fed1adb161a": "1.26.0",
                    "e58549c898a49d88": "1.27.0-1.27.5",
                },
            ),
            wraps(
                _RUNNERS + "Runner.run",
                _COMMON + "drain_before_returning",
                {"dc21ebd9aea2bcd1": "1.24.0-1.27.5"},
            ),
            wraps(
                _RUNNERS + "Runner._new_invocation_context",
                _COMMON + "register_fresh_session",
                {
                    "48664686cf5759f1": "1.24.0-1.24.1",
                    "cda8faea9808fbe6": "1.25.0-1.25.1",
                    "ba019aaf0693049a": "1.26.0",
                    "c2b0b28911538c16": "1.27.0-1.27.5",
                },
            ),
            wraps(
                _CONTENTS + "_process_compaction_events",
                _COMMON + "summaries_in_place",
                {
                    "624cda87bc9ca691": "1.24.0-1.24.1",
                    "b211d3be36694ce5": "1.25.0-1.27.5",
                },
                variant=Variant("drops-late-summaries", "624cda87bc9ca691"),
            ),
            # Request-time compaction (1.26+) summarized rewound events.
            wraps(
                _TOKEN_CHOICE,
                _TOKENS + "without_rewound_events",
                {"413056380eecf310": "1.26.0-1.27.5"},
                optional=True,  # 1.24-1.25 have no request-time compaction
            ),
            # ... and summarized what the previous turn's summary covered.
            wraps(
                _FLOWS + _REQUEST_TIME,  # imported by name
                _TOKENS + "after_the_summary_in_flight",
                {"ba6bed20b439a8c0": "1.26.0-1.27.5"},
                optional=True,
            ),
            # It reloads a stale session instead of failing: only a rewind's
            # write is wrapped, fenced against the summaries' (issue #24).
            wraps(
                _DATABASE + "DatabaseSessionService.append_event",
                _COMMON + "fence_rewinds",
                {
                    "a819932d6958d656": "1.24.0-1.24.1",
                    "40f54c25097af338": "1.25.0-1.26.0",
                    "a624792f16e14c80": "1.27.0-1.27.5",
                },
                **_DB,
            ),
            wraps(
                _SQLITE + "SqliteSessionService.append_event",
                _AWAITED + "catch_up_on_summaries",
                {
                    "f180bcc239bdb9a4": "1.24.0-1.26.0",
                    "d316e669d5f23d69": "1.27.1-1.27.5",
                },
                **_DB,
            ),
        ),
    ),
    # A revision marker detects stale writes: an eager client's next turn, or
    # the summary write at the end of the previous stream, fails.
    Family(
        name="1.28",
        releases=Releases("1.28.0", "2.7.0", ((2, 0), (2, 1))),
        code=(
            wraps(
                _RUNNERS + _COMPACT,
                _AWAITED + "compact_through_coordinator",
                {
                    "4cbad85f42d46cd5": "1.28.0-1.31.1",
                    "17d4462f14fdf535": "1.32.0-1.33.0",
                },
                optional=True,  # imported by name into ``runners`` until 1.33
            ),
            wraps(
                _COMPACTION + _COMPACT,
                _AWAITED + "compact_through_coordinator",
                {
                    "4cbad85f42d46cd5": "1.28.0-1.31.1",
                    "17d4462f14fdf535": "1.32.0-1.33.0",
                    "744826907519aa80": "1.34.0-1.39.1",
                    "c7518c9dd425fc1f": "2.2.0",
                    "b268402cac87c17a": "2.3.0-2.4.0",
                    "7c064bdf7b0e3f13": "2.5.0-2.6.3",
                },
            ),
            wraps(
                _RUNNERS + "Runner.run_async",
                _COMMON + "track_turn",
                {
                    "e58549c898a49d88": "1.28.0-1.33.0",
                    "dc86714bcaa092b2": "1.34.0-1.39.1",
                    "b0db29db0c61e029": "2.2.0-2.3.0",
                    "b431d01e72b47149": "2.4.0",
                    "69867b46a164ea11": "2.5.0-2.6.3",
                },
            ),
            wraps(
                _RUNNERS + "Runner.run",
                _COMMON + "drain_before_returning",
                {
                    "dc21ebd9aea2bcd1": "1.28.0-1.39.1",
                    "42d09d16d99f37af": "2.2.0",
                    "61f5dfda81bc042f": "2.3.0-2.6.3",
                },
            ),
            wraps(
                _RUNNERS + "Runner._new_invocation_context",
                _COMMON + "register_fresh_session",
                {
                    "c2b0b28911538c16": "1.28.0-1.39.1",
                    "753f0ac7699a7045": "2.2.0-2.6.3",
                },
            ),
            wraps(
                _DATABASE + "DatabaseSessionService.append_event",
                _AWAITED + "catch_up_on_summaries",
                {
                    "783bd5df52442a75": "1.28.0-1.39.1",
                    "bebbd4cabe8e720b": "2.2.0",
                    "f33d422299184b61": "2.3.0",
                    "0c267da0d3f460a4": "2.4.0-2.5.0",
                    "9ff1921c746d0739": "2.6.0-2.6.3",
                },
                **_DB,
            ),
            wraps(
                _SQLITE + "SqliteSessionService.append_event",
                _AWAITED + "catch_up_on_summaries",
                {
                    "d316e669d5f23d69": "1.28.0-1.39.1",
                    "731f254ae1e2c52e": "2.2.0-2.5.0",
                    "9fef65accf8a406b": "2.6.0-2.6.3",
                },
                **_DB,
            ),
            # Request-time compaction summarized rewound events (2.5 leaves
            # them out itself; the wrapper changes nothing there).
            wraps(
                _TOKEN_CHOICE,
                _TOKENS + "without_rewound_events",
                {
                    "13734a71f507e003": "1.28.0-1.33.0",
                    "048f23036ae0a3b6": "1.34.0-1.39.1",
                    "a45d3556f4f3edf7": "2.2.0",
                    "e335fcf0ee6ef7af": "2.3.0-2.6.3",
                },
            ),
            wraps(
                _FLOWS + _REQUEST_TIME,  # imported by name
                _TOKENS + "after_the_summary_in_flight",
                {
                    "ba6bed20b439a8c0": "1.28.0-1.31.1",
                    "d7b6ea64e667dfd2": "1.32.0-2.4.0",
                    "c11e608299e63ca6": "2.5.0-2.6.3",
                },
            ),
            # A workflow node's summary moved storage on a copy of the
            # parent's ``Session`` (google/adk-python#6691).
            wraps(
                _NODE_CONTEXT,
                _NODES + "share_parent_session",
                {"f1281748fb3d461e": "2.2.0", "5f876343542f7f20": "2.3.0-2.6.3"},
                optional=True,  # no workflows in 1.x
            ),
        ),
    ),
    # ``Runner._run_post_invocation_compaction`` discards a stale summary and
    # a next turn that read the session before it landed fails; our wrapper
    # stores the summary itself and yields none, so nothing is discarded.
    Family(
        name="2.7",
        releases=Releases("2.7.0", "2.14.0"),
        code=(
            wraps(
                _COMPACTION + _COMPACT,
                _AWAITED + "compact_through_coordinator",
                {
                    "7c064bdf7b0e3f13": "2.7.0-2.9.2",
                    "cd0e31732a819109": "2.10.0-2.11.0",
                    "db43a59b882d527f": "2.12.0",
                    "9e4865a85488dd3c": "2.13.0",
                },
            ),
            wraps(
                _RUNNERS + "Runner.run_async",
                _COMMON + "track_turn",
                {
                    "e0045ab20b597b06": "2.7.0-2.7.1",
                    "6529bf4bf1ff931b": "2.8.0-2.10.0",
                    "63aaa8f025f023a9": "2.11.0",
                    "50137a07a8e86f98": "2.12.0",
                    "d03504c01cd43aec": "2.13.0",
                },
            ),
            wraps(
                _RUNNERS + "Runner.run",
                _COMMON + "drain_before_returning",
                {
                    "0788a6d270fa36be": "2.7.0-2.7.1",
                    "faa637472bd89d1e": "2.8.0",
                    "5a62f62526b6f34e": "2.9.0-2.9.2",
                    "38123b2cc0dc6491": "2.10.0-2.13.0",
                },
            ),
            wraps(
                _RUNNERS + "Runner._new_invocation_context",
                _COMMON + "register_fresh_session",
                {
                    "0ca8053a9a13625a": "2.7.0-2.9.2",
                    "77ba914727230a59": "2.10.0",
                    "239f4c5e4f545ebb": "2.11.0-2.12.0",
                    "5e868bb1dad02155": "2.13.0",
                },
            ),
            wraps(
                _DATABASE + "DatabaseSessionService.append_event",
                _AWAITED + "catch_up_on_summaries",
                {
                    "76003ab68dc30864": "2.7.0-2.7.1",
                    "6d80f1f0f0a66250": "2.8.0-2.9.2",
                    "0e17237201c2fef0": "2.10.0-2.13.0",
                },
                **_DB,
            ),
            # Relied on, not wrapped: it appends what our wrapper yields (nothing).
            relies_on(
                _RUNNERS + "Runner._run_post_invocation_compaction",
                {
                    "8f6ea550acb54f18": "2.7.0-2.11.0",
                    "948bd670b091aee0": "2.12.0-2.13.0",
                },
            ),
            wraps(
                _SQLITE + "SqliteSessionService.append_event",
                _AWAITED + "catch_up_on_summaries",
                {
                    "032e9729bb2e0d34": "2.7.0-2.7.1",
                    "bfae39b54a67a2cd": "2.8.0-2.9.2",
                    "bf409758427858c6": "2.10.0-2.13.0",
                },
                **_DB,
            ),
            # Request-time compaction summarized what the previous turn's
            # summary covered (rewinds: applied upstream, nothing changes).
            wraps(
                _TOKEN_CHOICE,
                _TOKENS + "without_rewound_events",
                {
                    "e335fcf0ee6ef7af": "2.7.0-2.11.0",
                    "20049a1a6a651cd7": "2.12.0",
                    "2a5973b0b75caa75": "2.13.0",
                },
            ),
            wraps(
                _FLOWS + _REQUEST_TIME,  # imported by name
                _TOKENS + "after_the_summary_in_flight",
                {"c11e608299e63ca6": "2.7.0-2.9.2"},
                optional=True,  # moved to ``context._compaction`` in 2.10
            ),
            wraps(
                _FLOWS_2_10 + _REQUEST_TIME,  # imported by name
                _TOKENS + "after_the_summary_in_flight",
                {
                    "8fa6544a0c738e84": "2.10.0-2.11.0",
                    "9a7b910c07889f36": "2.12.0",
                    "4cf4ffa126e4fee0": "2.13.0",
                },
                optional=True,
            ),
            # 2.8 shares the parent's ``Session`` itself (google/adk-python#6697).
            wraps(
                _NODE_CONTEXT,
                _NODES + "share_parent_session",
                {
                    "d6e156b97eb2c77f": "2.7.0-2.7.1",
                    "055f2ab51706c0d0": "2.8.0-2.9.2",
                    "cf532073ac3bfe10": "2.10.0-2.11.0",
                    "8e3e440acd1c014c": "2.12.0-2.13.0",
                },
                variant=Variant("copied-node-session", "d6e156b97eb2c77f"),
            ),
        ),
    ),
)

SKIPPED_WHY = (
    "2.0.x and 2.1.x do not compact after an invocation of an LlmAgent, so "
    "they have no race to fix"
)


def not_claimed() -> str:
    """Why a release after the table's newest is left alone (for messages)."""
    below = max(Version(f.releases.below) for f in FAMILIES)
    return (
        f"releases after {below.major}.{below.minor - 1}.x are not claimed until "
        "their code has been checked (the package leaves them untouched); "
        f"{SKIPPED_WHY}"
    )


def claimed_releases() -> str:
    return ", ".join(f.span for f in FAMILIES)


def watched_modules() -> Tuple[str, ...]:
    """Every google-adk module that holds code of some family, in table order."""
    modules: Dict[str, None] = {}
    for family in FAMILIES:
        for code in family.code:
            modules[code.module] = None
    return tuple(modules)


def family_for(version: Optional[str]) -> Optional[Family]:
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
