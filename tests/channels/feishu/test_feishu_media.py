"""Feishu pictures reach a vision model: ``FeishuAdapter.fetch_media`` against the fake resource API,
and one image event through the real runtime (webhook -> ingest -> MediaResolver -> model)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from botframework.errors import MediaError
from botframework.messages import ImagePart
from botframework.testing import BotHarness, wait_until
from channels.feishu import FeishuAdapter
from channels.feishu.config import FeishuChannelConfig
from tests.fakes.feishu_api import TENANT_TOKEN, TINY_PNG, FakeFeishu, encrypt, png, signed_headers
from tests.fakes.runtime import RecordingRuntime

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "feishu"
TOKEN = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))["verification_token"]
ENCRYPT_KEY = "media-encrypt-key-0123456789"
MESSAGE = "om_a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1"
IMAGE = "img_v2_041b28e3-5680-48c2-9af2-497ace79333g"
REF = f"{MESSAGE}/{IMAGE}"
_apps = itertools.count(1)


def _app_id() -> str:
    """A fresh app id per adapter: lark-oapi caches tenant tokens process-wide by app id."""
    return f"cli_media{next(_apps):04d}{time.monotonic_ns() % 10_000}"


@pytest.fixture
async def feishu() -> AsyncIterator[FakeFeishu]:
    async with FakeFeishu() as fake:
        yield fake


def make_adapter(domain: str, runtime: RecordingRuntime) -> FeishuAdapter:
    config = FeishuChannelConfig.model_validate(
        {
            "app_id": _app_id(),
            "app_secret": "media-app-secret",
            "encrypt_key": ENCRYPT_KEY,
            "verification_token": TOKEN,
            "domain": domain,
        }
    )
    return FeishuAdapter(tenant="acme", config=config, runtime=runtime)


# fetch_media


async def test_fetch_media_downloads_the_picture_with_the_tenant_token(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    feishu.add_image(MESSAGE, IMAGE, TINY_PNG, content_type="image/png")
    data, media_type = await make_adapter(feishu.domain, runtime).fetch_media(REF)
    assert (data, media_type) == (TINY_PNG, "image/png")
    [call] = feishu.calls_to("resource")
    assert call.path == f"/open-apis/im/v1/messages/{MESSAGE}/resources/{IMAGE}"
    assert call.query == {"type": "image"}
    assert call.headers["Authorization"] == f"Bearer {TENANT_TOKEN}"


@pytest.mark.parametrize(
    ("data", "content_type", "want"),
    [
        (b"\xff\xd8\xff\xe0 jpeg bytes", "image/jpeg; charset=binary", "image/jpeg"),
        (b"\xff\xd8\xff\xe0 jpeg bytes", "application/octet-stream", "image/jpeg"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", None, "image/webp"),
        (b"GIF89a....", None, "image/gif"),
        (png(1, 1), None, "image/png"),
        (b"unknown picture format", None, "image/png"),
        (b"<html>login</html>", "text/html", "text/html"),
    ],
)
async def test_media_type_is_declared_sniffed_or_png(
    feishu: FakeFeishu, runtime: RecordingRuntime, data: bytes, content_type: str | None, want: str
) -> None:
    feishu.add_image(MESSAGE, IMAGE, data, content_type=content_type)
    assert await make_adapter(feishu.domain, runtime).fetch_media(REF) == (data, want)


async def test_unknown_resource_is_a_media_error_naming_the_ref(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    with pytest.raises(MediaError) as caught:
        await make_adapter(feishu.domain, runtime).fetch_media(REF)
    message = str(caught.value)
    assert REF in message and "234003" in message and "HTTP 400" in message
    assert TENANT_TOKEN not in message
    assert caught.value.__cause__ is not None
    assert len(feishu.calls_to("resource")) == 1


@pytest.mark.parametrize(
    "ref",
    [
        "",
        IMAGE,
        f"{MESSAGE}/",
        f"/{IMAGE}",
        f"{MESSAGE}/{IMAGE}/x",
        f"{MESSAGE}/../{IMAGE}",
        f"{MESSAGE}/{IMAGE}?type=file",
    ],
)
async def test_malformed_ref_is_a_media_error_without_any_request(
    feishu: FakeFeishu, runtime: RecordingRuntime, ref: str
) -> None:
    with pytest.raises(MediaError, match="is not '<message_id>/<image_key>'") as caught:
        await make_adapter(feishu.domain, runtime).fetch_media(ref)
    assert repr(ref) in str(caught.value)
    assert feishu.calls == []


async def test_gateway_error_page_is_a_media_error(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    feishu.add_image(MESSAGE, IMAGE)
    feishu.fail("resource", code=None, status=502)
    adapter = make_adapter(feishu.domain, runtime)
    with pytest.raises(MediaError, match=r"non-JSON answer .*HTTP 502"):
        await adapter.fetch_media(REF)
    assert await adapter.fetch_media(REF) == (TINY_PNG, "image/png")


async def test_invalid_token_is_dropped_so_the_next_fetch_gets_a_new_one(
    feishu: FakeFeishu, runtime: RecordingRuntime
) -> None:
    feishu.add_image(MESSAGE, IMAGE)
    feishu.fail("resource", code=99991663, msg="Invalid access token for authorization.", status=400)
    adapter = make_adapter(feishu.domain, runtime)
    with pytest.raises(MediaError, match="99991663"):
        await adapter.fetch_media(REF)
    assert await adapter.fetch_media(REF) == (TINY_PNG, "image/png")
    assert len(feishu.calls_to("token")) == 2


async def test_unreachable_api_is_a_media_error(runtime: RecordingRuntime) -> None:
    with pytest.raises(MediaError, match=REF) as caught:
        await make_adapter("http://127.0.0.1:9", runtime).fetch_media(REF)
    assert caught.value.__cause__ is not None


async def test_timeout_is_a_media_error(feishu: FakeFeishu, runtime: RecordingRuntime) -> None:
    feishu.add_image(MESSAGE, IMAGE)
    adapter = make_adapter(feishu.domain, runtime)
    await adapter._warm_token()
    adapter.client.config.timeout = 0.5
    feishu.stall_resources = asyncio.Event()
    try:
        with pytest.raises(MediaError, match="Timeout") as caught:
            await adapter.fetch_media(REF)
    finally:
        feishu.stall_resources.set()
    assert REF in str(caught.value)


# through the real runtime


async def test_an_image_event_reaches_the_model_as_the_pictures_bytes(feishu: FakeFeishu, db_url: str) -> None:
    picture = png(3, 2, (10, 200, 90))
    feishu.add_image(MESSAGE, IMAGE, picture, content_type="image/png")
    feishu.chat_of[MESSAGE] = "oc_84983ff6516d731e5b5f68d4ea2e1da5"
    config = {
        "app_id": _app_id(),
        "app_secret": "media-app-secret",
        "encrypt_key": ENCRYPT_KEY,
        "verification_token": TOKEN,
        "domain": feishu.domain,
    }
    payload: dict[str, Any] = json.loads((FIXTURES / "p2p_image.json").read_text(encoding="utf-8"))
    body = json.dumps({"encrypt": encrypt(ENCRYPT_KEY, json.dumps(payload))}).encode()
    async with BotHarness(channel="feishu", channel_config=config, db_url=db_url) as bot, aiohttp.ClientSession() as s:
        url = f"{bot.base_url}/t/{bot.tenant}/feishu/events"
        async with s.post(url, data=body, headers=signed_headers(ENCRYPT_KEY, body)) as response:
            assert response.status == 200, await response.text()

        async def answered() -> bool:
            return bool(bot.model.requests) and bool(feishu.sent)

        await wait_until(answered, timeout=30, what="the model call and the reply for the image event")
    [request] = bot.model.requests
    asked = request.messages[-1]
    assert asked.role == "user" and asked.text.startswith("[image]")
    [image] = [part for part in asked.content if isinstance(part, ImagePart)]
    prefix = "data:image/png;base64,"
    assert image.url.startswith(prefix) and image.media_type == "image/png"
    assert base64.b64decode(image.url[len(prefix) :]) == picture
    [call] = feishu.calls_to("resource")
    assert call.headers["Authorization"] == f"Bearer {TENANT_TOKEN}"
    assert feishu.sent[0]["reply_to"] == MESSAGE
