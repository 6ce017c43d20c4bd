"""Poison input: arbitrary Unicode (lone surrogates and control characters included) through every
channel's parse -> store -> history path. A channel may refuse a message (PayloadError) or repair it,
but what is stored must always come back as text that encodes, so no history replay can fail on it.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from botframework.config.schema import Config
from botframework.errors import PayloadError
from botframework.inputs import clean_text
from botframework.runtime import Runtime
from botframework.testing import ScriptedModel
from botframework.turn import Turn
from channels.discord.events import DiscordMessage
from channels.discord.events import parse_message as discord_parse
from channels.feishu.events import parse_event as feishu_parse
from channels.slack.events import parse_event as slack_parse
from channels.websocket.events import MessageFrame, parse_frame
from channels.websocket.events import to_turn as websocket_turn
from channels.wechat.events import parse_message as wechat_parse
from channels.wecom.events import parse_message as wecom_parse
from channels.wecom.events import parse_xml
from storage.conversations import find_conversation
from storage.tables import MESSAGES
from storage.turns import recent_transcript

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TENANT = "acme"
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), min_size=1, max_size=40)


def _websocket(text: str, n: int) -> Turn | None:
    frame = parse_frame(json.dumps({"type": "message", "id": f"c{n}", "text": text}))
    assert isinstance(frame, MessageFrame)
    return websocket_turn(tenant=TENANT, user="ann", frame=frame)


def _slack(text: str, n: int) -> Turn | None:
    body = {
        "type": "event_callback",
        "event_id": f"Ev{n}",
        "event": {"type": "message", "channel_type": "im", "user": "U1", "text": text, "channel": "D1", "ts": f"{n}.1"},
    }
    parsed = slack_parse(body, tenant=TENANT, bot_user_id="UBOT")
    return parsed.turn if parsed is not None else None


def _discord(text: str, n: int) -> Turn | None:
    message = DiscordMessage.from_payload(
        {"id": str(1000 + n), "channel_id": "5", "author": {"id": "7"}, "content": text}
    )
    return discord_parse(message, tenant=TENANT, bot_user_id="9")


def _feishu(text: str, n: int) -> Turn | None:
    payload = copy.deepcopy(json.loads((FIXTURES / "feishu" / "p2p_text.json").read_text(encoding="utf-8")))
    payload["header"]["event_id"] = f"ev{n}"
    payload["event"]["message"]["message_id"] = f"om_{n}"
    payload["event"]["message"]["content"] = json.dumps({"text": text})
    return feishu_parse(payload, tenant=TENANT, bot_open_id="ou_bot")


def _tencent(parse: Callable[..., Turn | None]) -> Callable[[str, int], Turn | None]:
    def build(text: str, n: int) -> Turn | None:
        xml = (
            "<xml><ToUserName>app</ToUserName><FromUserName>user-ann</FromUserName><CreateTime>1731400000</CreateTime>"
            f"<MsgType>text</MsgType><Content>{escape(text)}</Content><MsgId>{n}</MsgId></xml>"
        )
        return parse(parse_xml(xml.encode("utf-8", "surrogatepass")), tenant=TENANT)

    return build


CHANNELS: dict[str, Callable[[str, int], Turn | None]] = {
    "websocket": _websocket,
    "slack": _slack,
    "discord": _discord,
    "feishu": _feishu,
    "wecom": _tencent(wecom_parse),
    "wechat": _tencent(wechat_parse),
}


def _config(db_url: str) -> Config:
    return Config.model_validate(
        {
            "storage": {"url": db_url},
            "models": {"main": {"provider": "offline", "model": "scripted"}},
            "tenants": {
                TENANT: {
                    "agent": {"model": "main"},
                    "limits": {"max_input_chars": 1_000_000, "max_queued_per_conversation": 10_000},
                }
            },
        }
    )


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_any_unicode_is_refused_or_stored_as_text_that_replays(db_url: str, channel: str) -> None:
    loop = asyncio.new_event_loop()
    config = _config(db_url)
    runtime = Runtime(
        config=config, clients={"main": ScriptedModel(name="main", config=config.models["main"])}, channels=False
    )
    loop.run_until_complete(runtime.start())
    counter = iter(range(1, 10**9))
    stored = 0

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(ANY_TEXT)
    def check(text: str) -> None:
        nonlocal stored
        try:
            turn = CHANNELS[channel](text, next(counter))
        except PayloadError:
            return  # refused: fine, nothing is stored
        if turn is None:
            return
        assert turn.text == clean_text(turn.text)
        result = loop.run_until_complete(runtime.ingest(turn))
        assert not result.refused, result.refusal
        stored += 1
        rows = loop.run_until_complete(runtime.transcript(TENANT, turn.channel, turn.conversation_key, limit=1000))
        mine = [r for r in rows if r["role"] == "user" and r["event_id"] == turn.event_id]
        assert mine, rows
        for row in rows:
            json.dumps(row, ensure_ascii=False).encode("utf-8")  # what a history frame does

    try:
        check()
    finally:
        loop.run_until_complete(runtime.stop())
        loop.close()
    assert stored > 0


async def test_a_stored_row_that_cannot_be_read_is_skipped_and_the_rest_replays(db_url: str) -> None:
    config = _config(db_url)
    runtime = Runtime(
        config=config, clients={"main": ScriptedModel(name="main", config=config.models["main"])}, channels=False
    )
    await runtime.start()
    try:
        for n, text in enumerate(["first", "broken", "third"]):
            turn = _websocket(text, n)
            assert turn is not None
            await runtime.ingest(turn)
        async with runtime.db.write() as conn:
            await conn.execute(
                update(MESSAGES)
                .where(MESSAGES.c.role == "user", MESSAGES.c.id == 2)
                .values(content=[{"type": "text", "text": 7}])
            )
        async with runtime.db.read() as conn:
            cid = await find_conversation(conn, tenant=TENANT, channel="websocket", key="ann")
            assert cid is not None
            rows = await recent_transcript(conn, conversation_id=cid, limit=50)
        users = [r["text"] for r in rows if r["role"] == "user"]
        assert users == ["first", "third"]
    finally:
        await runtime.stop()
