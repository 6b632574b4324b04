"""2.x workflow nodes write through their parent's ``Session`` (#6691).

Through 2.7.1 a single-turn ``LlmAgent`` node gets a shallow copy of the
parent's ``Session``: a summary the node's request-time compaction appends
moves the storage revision on the copy only, so the parent's next write is
rejected as stale. 2.8.0 shares the parent's object instead (PR
google/adk-python#6697); this wrapper gives 2.2 - 2.7.1 the same.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from adk_compaction_backport._patching import is_active


def share_parent_session(original: Callable[..., Any]) -> Callable[..., Any]:
    """Hand the node's invocation context the parent's ``Session`` object.

    Upstream's copy shares the events list already (``deep=False``); only the
    storage revision and update time were the copy's own.
    """

    @functools.wraps(original)
    def prepare_llm_agent_context(agent: Any, ctx: Any) -> Any:
        agent_ctx = original(agent, ctx)
        if is_active() and agent_ctx is not ctx:
            parent = ctx._invocation_context
            agent_ctx._invocation_context.session = parent.session
        return agent_ctx

    return prepare_llm_agent_context
