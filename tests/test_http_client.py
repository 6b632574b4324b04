"""The HTTP client of ``verify --server``: reading SSE events and sessions as JSON."""

from __future__ import annotations

from adk_compaction_backport.verify.analysis import inspect_session
from adk_compaction_backport.verify.http_client import (
    _error_of,
    _is_final_reply,
    session_view,
)


def _event(author, text, invocation, timestamp, **extra):
    event = {
        "author": author,
        "invocationId": invocation,
        "timestamp": timestamp,
        "content": {"role": "user" if author == "user" else "model"},
    }
    if text is not None:
        event["content"]["parts"] = [{"text": text}]
    event.update(extra)
    return event


def test_final_reply_is_a_complete_text_of_the_agent():
    assert _is_final_reply(_event("assistant", "reply to x", "i1", 1.0))
    assert not _is_final_reply(_event("user", "x", "i1", 1.0))
    assert not _is_final_reply(_event("assistant", "rep", "i1", 1.0, partial=True))
    call = _event("assistant", None, "i1", 1.0)
    call["content"]["parts"] = [{"functionCall": {"name": "tool"}}]
    assert not _is_final_reply(call)
    summary = _event("assistant", "summary", "i1", 1.0)
    summary["actions"] = {"compaction": {"startTimestamp": 0, "endTimestamp": 1}}
    assert not _is_final_reply(summary)


def test_error_events_of_every_release_shape_are_errors():
    assert _error_of({"error": "stale session"})  # 1.x run_sse
    assert _error_of({"error_type": "StaleSessionError", "error_message": "m"})
    assert _error_of({"errorCode": "500", "errorMessage": "model failed"})
    assert _error_of(_event("assistant", "reply to x", "i1", 1.0)) is None


def test_a_session_read_as_json_is_inspected_like_a_stored_one():
    events = []
    for n in range(1, 5):
        events.append(_event("user", f"s0 turn {n}", f"i{n}", n + 0.1))
        events.append(_event("assistant", f"reply to s0 turn {n}", f"i{n}", n + 0.2))
    events.append(
        {
            "author": "user",
            "invocationId": "c1",
            "timestamp": 2.5,
            "content": {"role": "model", "parts": [{"text": "summary #1"}]},
            "actions": {"compaction": {"startTimestamp": 1.1, "endTimestamp": 2.2}},
        }
    )
    findings = inspect_session(session_view({"id": "s", "events": events}))
    assert findings.user_messages == [f"s0 turn {n}" for n in range(1, 5)]
    assert len(findings.replies) == 4
    assert findings.summary_ranges == [(1, 2)]


def test_a_turn_times_its_final_reply_and_the_end_of_its_stream():
    """Turn latency at the final reply, stream latency at the end of the body."""
    import asyncio
    import json

    import httpx

    from adk_compaction_backport.verify.http_client import _Turn

    events = [_event("assistant", "reply to x", "i1", 1.0), {"partial": False}]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=body)

    async def run() -> _Turn:
        turn = _Turn("turn 1")
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            await turn.run(c, {})
        return turn

    turn = asyncio.run(run())
    assert turn.errors == []
    assert turn.replied_after is not None and turn.ended_after is not None
    assert turn.ended_after >= turn.replied_after
