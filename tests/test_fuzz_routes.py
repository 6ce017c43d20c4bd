"""Fuzz every HTTP route of a running server with arbitrary bodies, queries and signature headers.

Whatever a client sends gets a 4xx (or a 2xx for what is harmless), never a 5xx, never a traceback
in the log, and the server stays healthy: afterwards it still answers a genuine signed request.
The server runs on its own thread and loop; hypothesis drives plain HTTP requests at it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botframework.config.schema import Config
from botframework.runtime import Runtime
from botframework.server import build_app
from botframework.testing import ScriptedModel

SLACK_SECRET = "fuzz-slack-signing-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
DEAD = "http://127.0.0.1:9"
"""Vendor APIs point here: nothing listens, so a start-up call fails at once and stays local."""

ROUTES = [
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/t/acme/chat"),
    ("GET", "/t/acme/ws"),
    ("POST", "/t/acme/slack/events"),
    ("POST", "/t/acme/feishu/events"),
    ("GET", "/t/acme/wecom/callback"),
    ("POST", "/t/acme/wecom/callback"),
    ("GET", "/t/acme/wechat/callback"),
    ("POST", "/t/acme/wechat/callback"),
    ("POST", "/t/safe/wechat/callback"),
    ("POST", "/t/nobody/slack/events"),
    ("GET", "/static/chat.js"),
]

QUERY_NAMES = [
    "signature",
    "timestamp",
    "nonce",
    "msg_signature",
    "echostr",
    "encrypt_type",
    "openid",
    "user",
    "resume",
    "token",
    "expires",
    "sig",
    "x",
]
HEADER_NAMES = [
    "X-Slack-Request-Timestamp",
    "X-Slack-Signature",
    "X-Lark-Signature",
    "X-Lark-Request-Timestamp",
    "X-Lark-Request-Nonce",
    "Content-Type",
    "Origin",
    "Authorization",
]


def _config(db_url: str) -> Config:
    tencent = {"token": "fuzz-token", "api_base_url": DEAD}
    return Config.model_validate(
        {
            "storage": {"url": db_url},
            "models": {"main": {"provider": "offline", "model": "scripted"}},
            "tenants": {
                "acme": {
                    "agent": {"model": "main"},
                    "channels": {
                        "websocket": {},
                        "slack": {"signing_secret": SLACK_SECRET, "bot_token": "xoxb-fuzz", "api_base_url": DEAD},
                        "feishu": {
                            "app_id": "cli_fuzz",
                            "app_secret": "fuzz-app-secret",
                            "encrypt_key": "fuzz-encrypt-key",
                            "verification_token": "fuzz-verify",
                            "domain": DEAD,
                        },
                        "wecom": {
                            **tencent,
                            "corp_id": "ww-fuzz",
                            "agent_id": 1,
                            "secret": "s",
                            "encoding_aes_key": AES_KEY,
                        },
                        "wechat": {**tencent, "app_id": "wx-fuzz", "app_secret": "s"},
                    },
                },
                "safe": {
                    "agent": {"model": "main"},
                    "channels": {
                        "wechat": {**tencent, "app_id": "wx-safe", "app_secret": "s", "encoding_aes_key": AES_KEY}
                    },
                },
            },
        }
    )


class _Problems(logging.Handler):
    """Every record that carries a traceback, or is logged at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


class LiveServer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.url = ""
        self.model = ScriptedModel(name="main", config=config.models["main"])
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the test
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runtime = Runtime(config=self.config, clients={"main": self.model})
        runner = web.AppRunner(build_app(runtime))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        assert self._ready.wait(60), "server did not start"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture
def live(db_url: str) -> Iterator[tuple[LiveServer, _Problems]]:
    problems = _Problems()
    root = logging.getLogger()
    root.addHandler(problems)
    try:
        with LiveServer(_config(db_url)) as server:
            yield server, problems
    finally:
        root.removeHandler(problems)


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40))
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_ENVELOPES = st.builds(
    lambda kind, inner: json.dumps(
        {"type": kind, "event": inner, "encrypt": inner, "challenge": inner, "header": inner}
    ),
    st.sampled_from(["url_verification", "event_callback", "x"]),
    _JSON,
)
_XML = st.builds(
    lambda tag, text: f"<xml><{tag}><![CDATA[{text}]]></{tag}><MsgType>text</MsgType></xml>",
    st.sampled_from(["Encrypt", "Content", "FromUserName", "x"]),
    st.text(max_size=60),
)
_DEPTHS = st.sampled_from([2, 100, 1_000, 5_000, 100_000])
_BODIES = st.one_of(
    st.binary(max_size=2000),
    _JSON.map(lambda v: json.dumps(v).encode()),
    _ENVELOPES.map(str.encode),
    _XML.map(lambda s: s.encode("utf-8", "surrogatepass")),
    _DEPTHS.map(lambda n: b"[" * n + b"]" * n),
    _DEPTHS.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    _DEPTHS.map(lambda n: b'{"encrypt": ' + b"[" * n + b"]" * n + b"}"),
    st.sampled_from([b"[]", b"null", b'{"type": "event_callback"', b"{}", b'"x"', b"1e999999"]),
    st.just(b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml>&b;</xml>'),
)
_HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=60)
_PLAUSIBLE = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/xml",
        "v0=" + "0" * 64,
        "0" * 64,
        "http://evil.example",
        "Bearer x",
    ]
)
_NOW = st.builds(lambda skew: str(int(time.time()) + skew), st.integers(-400, 400))
_HEADERS = st.dictionaries(
    st.sampled_from(HEADER_NAMES),
    st.one_of(_HEADER_TEXT, _PLAUSIBLE, _NOW, st.integers(0, 10**400).map(str)),
    max_size=6,
)
_QUERY = st.dictionaries(st.sampled_from(QUERY_NAMES), st.one_of(st.text(max_size=60), _NOW), max_size=6)


@pytest.mark.slow
def test_no_request_to_any_route_gets_a_5xx_or_logs_a_traceback(live: tuple[LiveServer, _Problems]) -> None:
    server, problems = live
    session = requests.Session()
    statuses: dict[int, int] = {}

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(ROUTES), _QUERY, _HEADERS, _BODIES)
    def one(route: tuple[str, str], query: dict[str, str], headers: dict[str, str], body: bytes) -> None:
        method, path = route
        response = session.request(
            method,
            server.url + path,
            params=query,
            headers=headers,
            data=body if method == "POST" else None,
            timeout=30,
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (method, path, query, headers, body[:200], response.text[:200])

    # The known-nasty cases on every route, every time (random search may not pick them).
    now = str(int(time.time()))
    header_sets: list[dict[str, str]] = [
        {},
        {"Content-Type": "application/json", "X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=" + "0" * 64},
        {"Content-Type": "application/json", "X-Slack-Request-Timestamp": "9" * 400, "X-Slack-Signature": "v0=0"},
        {"X-Lark-Signature": "0" * 64, "X-Lark-Request-Timestamp": now, "X-Lark-Request-Nonce": "n"},
    ]
    nasty = [b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b'{"encrypt": ' + b"[" * 100_000 + b"}"]
    nasty += [b"[]", b"null", b'{"type": "event_callback", "event": ', b"\xff\xfe", b"<xml><Encrypt>" + b"A" * 5000]
    for (method, path), headers, body in itertools.product(ROUTES, header_sets, nasty):
        query = {"timestamp": now, "nonce": "n", "signature": "0" * 40, "msg_signature": "0" * 40}
        one.hypothesis.inner_test((method, path), query, headers, body)  # type: ignore[attr-defined]
    one()
    assert any(400 <= s < 500 for s in statuses), statuses
    assert not [r for r in problems.records if r.exc_info], [r.getMessage() for r in problems.records]
    # Still healthy: health answers, and a genuine signed request is still served.
    assert session.get(server.url + "/healthz", timeout=10).json() == {"status": "ok"}
    body = json.dumps({"type": "url_verification", "challenge": "still-alive", "token": "t"}).encode()
    timestamp = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    answer = session.post(
        server.url + "/t/acme/slack/events",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest}",
        },
        timeout=10,
    )
    assert answer.status_code == 200 and "still-alive" in answer.text
    assert server.model.requests == []  # nothing a fuzzer sent reached the model
