"""Token-threshold compaction never summarizes rewound events (1.26 - 2.6).

Request-time compaction (1.26+) runs upstream's token path inside the turn,
on the turn's whole ``Session``: before 2.5 it does not leave out the events a
``Runner.rewind_async`` removed, so its summary quotes an undone turn and
brings it back into the prompt (issue #24). The after-invocation path gets the
coordinator's view, which has no rewound events already. 2.5 applies rewinds
itself; there the wrapper changes nothing.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, List

from adk_compaction_backport._patching import is_active
from adk_compaction_backport._rewinds import live_events


def without_rewound_events(original: Callable[..., Any]) -> Callable[..., Any]:
    """Choose what to summarize from the events that still count."""

    @functools.wraps(original)
    def _events_to_compact_for_token_threshold(*args: Any, **kwargs: Any) -> List[Any]:
        if is_active() and "events" in kwargs:
            kwargs["events"] = live_events(kwargs["events"])
        return original(*args, **kwargs)

    return _events_to_compact_for_token_threshold
