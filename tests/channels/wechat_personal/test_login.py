"""QR login against the fake iLink server: scaned, expired (new QR), redirect, confirmed; the session
is stored per tenant in the database and the bot token is never printed."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from botframework.channel_state import MemoryChannelState
from botframework.cli import main
from botframework.errors import LoginError
from channels.wechat_personal.api import ILinkApi
from channels.wechat_personal.config import WeChatPersonalChannelConfig
from channels.wechat_personal.login import qr_text, run_qr_login
from storage.channel_state import SqlChannelState
from storage.db import Database
from tests.fakes.ilink_api import FakeILink


class Console:
    def __init__(self, answers: list[str] | None = None) -> None:
        self.out = io.StringIO()
        self.answers = answers or []
        self.asked: list[str] = []

    def say(self, text: str) -> None:
        self.out.write(text + "\n")

    async def ask(self, prompt: str) -> str:
        self.asked.append(prompt)
        return self.answers.pop(0) if self.answers else ""


@pytest.fixture
async def fake() -> AsyncIterator[FakeILink]:
    async with FakeILink() as api:
        yield api


async def login(fake: FakeILink, console: Console, **kwargs: float) -> object:
    api = ILinkApi(base_url=fake.base_url)
    try:
        return await run_qr_login(
            api, console, bot_type="3", timeout_s=kwargs.get("timeout_s", 20), poll_interval_s=0.01
        )
    finally:
        await api.close()


async def test_scanned_then_expired_shows_a_new_qr_then_confirmed(fake: FakeILink) -> None:
    fake.qr_script = [
        {"status": "wait"},
        {"status": "scaned"},
        {"status": "expired"},
        {"status": "wait"},
        {"status": "scaned"},
        {"status": "confirmed", "ilink_user_id": "o9cq8x@im.wechat"},
    ]
    console = Console()
    session = await login(fake, console)
    assert session.bot_token == fake.token and session.bot_id == fake.bot_id  # type: ignore[attr-defined]
    assert session.base_url == fake.base_url  # type: ignore[attr-defined]
    out = console.out.getvalue()
    first, second = (qr_text(f"https://liteapp.weixin.qq.com/q/7GiQu1?qrcode=qr-{n}&bot_type=3") for n in (1, 2))
    assert out.index(first) < out.index("Scanned") < out.index("expired") < out.index(second) < out.index("Confirmed")
    assert out.count("Scanned: confirm") == 2
    assert fake.token not in out and fake.token not in repr(session)
    polled = [c.query["qrcode"] for c in fake.calls_to("get_qrcode_status")]
    assert polled == ["qr-1"] * 3 + ["qr-2"] * 3


async def test_a_redirect_moves_the_polling_to_the_host_it_names(fake: FakeILink) -> None:
    async with FakeILink(token="token-from-the-other-idc") as other:
        other.qr_script = [{"status": "confirmed"}]
        fake.qr_script = [
            {"status": "scaned"},
            {"status": "scaned_but_redirect", "redirect_host": f"127.0.0.1:{other.port}"},
        ]
        session = await login(fake, Console())
    assert session.bot_token == "token-from-the-other-idc"  # type: ignore[attr-defined]
    assert [c.query["qrcode"] for c in other.calls_to("get_qrcode_status")] == ["qr-1"]
    assert len(fake.calls_to("get_qrcode_status")) == 2


async def test_a_verify_code_is_asked_and_sent_with_the_next_poll(fake: FakeILink) -> None:
    fake.qr_script = [{"status": "scaned"}, {"status": "need_verifycode"}, {"status": "confirmed"}]
    console = Console(answers=["4821"])
    await login(fake, console)
    assert len(console.asked) == 1
    assert fake.calls_to("get_qrcode_status")[-1].query.get("verify_code") == "4821"


async def test_three_expired_codes_end_the_login_with_a_clear_error(fake: FakeILink) -> None:
    fake.qr_script = [{"status": "expired"}]
    with pytest.raises(LoginError, match="expired 3 times"):
        await login(fake, Console())
    assert len(fake.calls_to("get_bot_qrcode")) == 3


async def test_nobody_scanning_times_out(fake: FakeILink) -> None:
    with pytest.raises(LoginError, match="nobody confirmed"):
        await login(fake, Console(), timeout_s=0.3)


async def test_the_login_hook_stores_the_session_and_keeps_the_cursor_of_the_same_bot(fake: FakeILink) -> None:
    from channels.wechat_personal import WeChatPersonalAdapter

    fake.qr_script = [{"status": "confirmed"}]
    config = WeChatPersonalChannelConfig(api_base_url=fake.base_url)
    state = MemoryChannelState(
        {"cursor": "c:5", "session": {"bot_token": "old", "bot_id": fake.bot_id, "base_url": "x"}}
    )
    console = Console()
    await WeChatPersonalAdapter.login(tenant="acme", config=config, state=state, console=console)
    session = await state.get("session")
    assert session["bot_token"] == fake.token and session["bot_id"] == fake.bot_id and "expired_at" not in session
    assert await state.get("cursor") == "c:5"
    # Another bot's cursor means nothing to a new one.
    state.values["session"]["bot_id"] = "another@im.bot"
    await WeChatPersonalAdapter.login(tenant="acme", config=config, state=state, console=console)
    assert await state.get("cursor") is None


async def test_botframework_login_from_the_command_line(
    fake: FakeILink, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    fake.qr_script = [{"status": "wait"}, {"status": "scaned"}, {"status": "confirmed"}]
    config = tmp_path / "bot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"url": db_url},
                "models": {"main": {"provider": "offline"}},
                "tenants": {
                    "acme": {
                        "agent": {"model": "main"},
                        "channels": {"wechat_personal": {"api_base_url": fake.base_url}},
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    caplog.set_level(logging.DEBUG)
    code = await asyncio.to_thread(main, ["login", "wechat_personal", "--config", str(config), "--tenant", "acme"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Logged in as bot b0f5860fdecb@im.bot" in out.out
    assert fake.token not in out.out + out.err + caplog.text
    db = Database(db_url)
    try:
        stored = await SqlChannelState(db, tenant="acme", channel="wechat_personal").get("session")
        other = await SqlChannelState(db, tenant="globex", channel="wechat_personal").get("session")
    finally:
        await db.close()
    assert stored["bot_token"] == fake.token and stored["base_url"] == fake.base_url
    assert other is None
