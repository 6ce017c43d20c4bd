from __future__ import annotations

import pytest

from botframework.channel import EventRef, Outbound
from botframework.errors import ErrorKind, PayloadError
from botframework.turn import Reply
from channels.websocket.events import CancelFrame, MessageFrame, event_id_for, parse_frame, to_turn
from channels.websocket.render import final_frames


def test_message_frame_becomes_a_turn_keyed_by_user() -> None:
    frame = parse_frame('{"type":"message","id":"c1","text":"hello"}')
    assert frame == MessageFrame(id="c1", text="hello")
    assert isinstance(frame, MessageFrame)
    turn = to_turn(tenant="acme", user="ann", frame=frame)
    assert (turn.channel, turn.conversation_key, turn.user_id, turn.text) == (
        "websocket",
        "ann",
        "ann",
        "hello",
    )
    assert turn.reply_target == {"user": "ann", "id": "c1"}
    assert turn.event_id == event_id_for("ann", "c1") != event_id_for("bob", "c1")


def test_cancel_frame() -> None:
    assert parse_frame('{"type":"cancel","id":"c9"}') == CancelFrame(id="c9")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"type":"message","text":"x"}', "'id' must be"),
        ('{"type":"message","id":"c1","text":"   "}', "'text' must be"),
        ('{"type":"message","id":"c1","text":"' + "x" * 100_001 + '"}', "limit is 100000"),
        ('{"type":"dance","id":"c1"}', "unknown frame type 'dance'"),
    ],
)
def test_bad_frames_are_rejected_with_the_reason(raw: str, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse_frame(raw)


def test_final_frames_answer_every_steered_message_once() -> None:
    events = [
        EventRef(event_id="e1", user_id="ann", reply_target={"user": "ann", "id": "c1"}),
        EventRef(event_id="e2", user_id="ann", reply_target={"user": "ann", "id": "c2"}),
    ]
    ok = Outbound(
        tenant="t",
        channel="websocket",
        turn_id="t1",
        conversation_key="ann",
        reply=Reply(text="answer", model="main"),
        events=events,
    )
    frames = final_frames(ok)
    assert frames == [
        {"type": "done", "reply_to": "c1", "text": "answer", "model": "main"},
        {"type": "done", "reply_to": "c2", "text": "answer", "model": "main", "merged_into": "c1"},
    ]
    failed = Outbound(
        tenant="t",
        channel="websocket",
        turn_id="t1",
        conversation_key="ann",
        reply=Reply(text="rate limited", error_kind=ErrorKind.RATE_LIMITED),
        events=events[:1],
    )
    assert final_frames(failed) == [
        {"type": "error", "reply_to": "c1", "message": "rate limited", "kind": "rate_limited"}
    ]



def test_the_web_chat_page_is_the_channels_own_route_and_named_for_the_start_banner() -> None:
    from botframework.testing import RecordingRuntime
    from channels.websocket.adapter import WebSocketAdapter
    from channels.websocket.config import WebSocketChannelConfig

    adapter = WebSocketAdapter(tenant="t", config=WebSocketChannelConfig(), runtime=RecordingRuntime())
    assert {(r.method, r.path) for r in adapter.routes()} == {("GET", "ws"), ("GET", "chat")}
    assert list(adapter.pages()) == [("web chat", "chat")]
