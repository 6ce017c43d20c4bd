"""SSRF: image URLs from users never make the model server, or us, reach a private address.

The fakes listen on 127.0.0.1 only; the guard is told in each test which loopback address it may
treat as "public", so every refusal below is the guard's decision, observed without any traffic
leaving the machine.
"""

from __future__ import annotations

import base64
import ipaddress
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from botframework.errors import MediaError
from botframework.media import MediaResolver, host_matches
from botframework.messages import ImagePart, Message, TextPart
from botframework.netguard import GuardedFetcher, IPAddress, is_public_address
from botframework.testing import BotHarness, wait_until
from tests.channels.wechat.test_conformance import ORIGINAL_ID, WeChatHarness
from tests.fakes.local import serve_local

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("169.254.169.254", False),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_host_patterns() -> None:
    assert host_matches("mmbiz.qpic.cn", ["*.qpic.cn"])
    assert host_matches("CDN.DiscordApp.com.", ["cdn.discordapp.com"])
    assert not host_matches("qpic.cn.evil.example", ["*.qpic.cn"])
    assert not host_matches("evilqpic.cn", ["*.qpic.cn"])
    assert not host_matches("qpic.cn", ["*.qpic.cn"])


class Site:
    """A local image host that records every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.port = 0
        self.redirect_to = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        if request.path == "/redirect":
            raise web.HTTPFound(self.redirect_to)
        if request.path == "/big.png":
            return web.Response(body=b"\x00" * 5000, content_type="image/png")
        if request.path == "/page.html":
            return web.Response(text="<html>", content_type="text/html")
        return web.Response(body=PNG, content_type="image/png")


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    s = Site()
    app = web.Application()
    app.router.add_get("/{path:.*}", s.handle)
    runner, s.port = await serve_local(app)
    try:
        yield s
    finally:
        await runner.cleanup()


def _only(address: str) -> GuardedFetcher:
    """A fetcher that treats ``address`` as the one public address, on any port."""
    allowed = ipaddress.ip_address(address)

    def is_allowed(ip: IPAddress) -> bool:
        return ip == allowed

    return GuardedFetcher(max_bytes=1000, allowed=is_allowed, ports=frozenset(range(1, 65536)))


async def test_an_allowed_host_is_fetched(site: Site) -> None:
    data, media_type = await _only("127.0.0.1").fetch(f"http://127.0.0.1:{site.port}/a.png")
    assert (data, media_type) == (PNG, "image/png")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/a.png",
        "http://127.0.0.2:{port}/a.png",
        "http://localhost:{port}/a.png",  # a name that resolves to a refused address
        "file:///etc/passwd",
        "gopher://127.0.0.1:{port}/",
        "http://user:pw@127.0.0.1:{port}/a.png",
    ],
)
async def test_refused_urls_are_never_requested(site: Site, url: str) -> None:
    fetcher = _only("127.0.0.1") if "user:pw" in url else _only("127.0.0.9")
    with pytest.raises(MediaError):
        await fetcher.fetch(url.format(port=site.port))
    assert site.hits == []


async def test_a_redirect_to_a_private_address_is_rechecked_and_refused(site: Site) -> None:
    site.redirect_to = f"http://127.0.0.2:{site.port}/a.png"
    with pytest.raises(MediaError, match="not a public address"):
        await _only("127.0.0.1").fetch(f"http://127.0.0.1:{site.port}/redirect")
    assert site.hits == ["/redirect"]


async def test_size_cap_and_content_type(site: Site) -> None:
    fetcher = _only("127.0.0.1")
    with pytest.raises(MediaError, match="bytes"):
        await fetcher.fetch(f"http://127.0.0.1:{site.port}/big.png")
    with pytest.raises(MediaError, match="not an image"):
        await fetcher.fetch(f"http://127.0.0.1:{site.port}/page.html")


def test_default_ports_only() -> None:
    with pytest.raises(MediaError, match="port"):
        GuardedFetcher(max_bytes=10).check_url("http://example.com:8080/a.png")


async def test_the_resolver_passes_trusted_cdn_urls_and_fetches_or_drops_the_rest(site: Site) -> None:
    async def no_media(tenant: str, channel: str, ref: str) -> tuple[bytes, str]:
        raise MediaError("unused")

    resolver = MediaResolver(fetch=no_media, trusted_hosts=["*.qpic.cn"], fetcher=_only("127.0.0.1"))
    cdn = "https://mmbiz.qpic.cn/mmbiz_jpg/abc/0"
    message = Message.user(
        "[image]",
        images=[
            ImagePart(url=cdn),
            ImagePart(url="http://mmbiz.qpic.cn/mmbiz_jpg/abc/0"),  # http: not passed on as-is
            ImagePart(url=f"http://127.0.0.1:{site.port}/a.png"),
            ImagePart(url="http://169.254.169.254/latest/meta-data/iam"),
        ],
    )
    [out] = await resolver.resolve("acme", [message])
    urls = [p.url for p in out.content if isinstance(p, ImagePart)]
    notes = [p.text for p in out.content if isinstance(p, TextPart) and p.text == "[image unavailable]"]
    assert urls == [cdn, "data:image/png;base64," + base64.b64encode(PNG).decode()]
    assert len(notes) == 2
    assert "169.254" not in str(out.content)


async def test_a_wechat_picurl_to_the_metadata_address_never_reaches_a_model_request(db_url: str) -> None:
    harness = WeChatHarness("plaintext")
    await harness.start()
    try:
        async with BotHarness(channel="wechat", channel_config=harness.channel_config(), db_url=db_url) as bot:
            created = int(time.time())
            xml = (
                f"<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName>"
                "<FromUserName><![CDATA[user-ann]]></FromUserName>"
                f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
                "<PicUrl><![CDATA[http://169.254.169.254/latest/meta-data/iam/security-credentials/]]></PicUrl>"
                "<MediaId><![CDATA[m1]]></MediaId><MsgId>24795603187459999</MsgId></xml>"
            )
            query, body = harness.signed(xml, timestamp=str(created), nonce="ssrf-1", forged=False)
            assert await harness.post(bot, query, body) == 200

            async def called() -> bool:
                return bool(bot.model.requests)

            await wait_until(called, what="the model call")
            [request] = bot.model.requests
            sent = str(request.messages)
            assert "169.254.169.254" not in sent
            assert "[image unavailable]" in sent
    finally:
        await harness.stop()
