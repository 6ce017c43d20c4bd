"""Images shared in Slack reach a vision model: referenced at ingest, fetched with the bot token
when the model is called, and never sent to a host other than Slack's file server."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from botframework.errors import MediaError
from botframework.messages import ImagePart
from botframework.testing import BotHarness, wait_until
from channels.slack import SlackAdapter
from channels.slack.config import SlackChannelConfig
from channels.slack.events import parse_event
from storage.tables import MessageRow
from tests.fakes.runtime import RecordingRuntime
from tests.fakes.slack_api import FakeSlack, signed_headers

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "slack"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def file_share_event(url: str) -> dict[str, object]:
    body: dict[str, object] = json.loads((FIXTURES / "message_file_share_im.json").read_text())
    event = body["event"]
    assert isinstance(event, dict)
    event["files"][0]["url_private"] = url
    return body


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(file_token=BOT_TOKEN) as fake:
        yield fake


def adapter_for(slack: FakeSlack, runtime: RecordingRuntime) -> SlackAdapter:
    config = SlackChannelConfig.model_validate(
        {"signing_secret": SECRET, "bot_token": BOT_TOKEN, "api_base_url": slack.base_url}
    )
    return SlackAdapter(tenant="acme", config=config, runtime=runtime)


def test_a_shared_image_becomes_a_reference_not_a_download() -> None:
    body = json.loads((FIXTURES / "message_file_share_im.json").read_text())
    parsed = parse_event(body, tenant="acme", bot_user_id=None)
    assert parsed is not None
    assert parsed.turn.text == "what does this graph show?"
    assert parsed.turn.images == (
        ImagePart(
            url="media:slack:https://files.slack.com/files-pri/T0001ACME-F0FILE123/graph.png",
            media_type="image/png",
        ),
    )


async def test_fetch_media_reads_the_file_with_the_bot_token(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    url = slack.add_file("graph.png", PNG)
    assert await adapter_for(slack, runtime).fetch_media(url) == (PNG, "image/png")
    [request] = slack.file_requests
    assert request.headers["Authorization"] == f"Bearer {BOT_TOKEN}"


async def test_a_missing_scope_login_page_and_a_missing_file_are_media_errors(
    slack: FakeSlack, runtime: RecordingRuntime
) -> None:
    url = slack.add_file("graph.png", PNG)
    slack.file_token = "xoxb-another-token"  # our token lacks files:read: Slack shows its login page
    with pytest.raises(MediaError, match="files:read"):
        await adapter_for(slack, runtime).fetch_media(url)
    slack.file_token = BOT_TOKEN
    with pytest.raises(MediaError, match="HTTP 404"):
        await adapter_for(slack, runtime).fetch_media(url.replace("graph.png", "gone.png"))


@pytest.mark.parametrize(
    "url", ["https://evil.example.com/files-pri/x.png", "file:///etc/passwd", "ftp://files.slack.com/x"]
)
async def test_the_token_never_goes_to_another_host(slack: FakeSlack, runtime: RecordingRuntime, url: str) -> None:
    with pytest.raises(MediaError, match="not fetched with the bot token"):
        await adapter_for(slack, runtime).fetch_media(url)
    assert slack.file_requests == []


async def test_the_model_sees_the_picture_and_storage_keeps_only_the_reference(slack: FakeSlack, db_url: str) -> None:
    url = slack.add_file("graph.png", PNG)
    config = {"signing_secret": SECRET, "bot_token": BOT_TOKEN, "api_base_url": slack.base_url}
    bot_harness = BotHarness(channel="slack", channel_config=config, db_url=db_url)
    async with bot_harness as bot, aiohttp.ClientSession() as http:
        body = json.dumps(file_share_event(url)).encode()
        async with http.post(
            f"{bot.base_url}/t/{bot.tenant}/slack/events", data=body, headers=signed_headers(SECRET, body)
        ) as response:
            assert response.status == 200

        async def answered() -> bool:
            return bool(slack.posted)

        await wait_until(answered, what="the reply in Slack")
        [request] = bot.model.requests
        [image] = request.messages[-1].images
        assert image.url == "data:image/png;base64," + base64.b64encode(PNG).decode()
        assert request.messages[-1].text == "what does this graph show?"
        async with bot.runtime.db.read() as conn:
            stored = (await conn.execute(select(MessageRow.__table__.c.content))).scalars().all()
        assert any(f"media:slack:{url}" in json.dumps(c) for c in stored)
        assert not any("base64" in json.dumps(c) for c in stored)
