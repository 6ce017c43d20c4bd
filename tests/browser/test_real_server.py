"""The web chat page against the real ``botframework serve`` (offline model), as a new user meets it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from playwright.async_api import Browser, expect

from tests.e2e.support import ServerProcess

pytestmark = pytest.mark.browser


@pytest_asyncio.fixture(loop_scope="module")
async def served(tmp_path: Path) -> AsyncIterator[str]:
    config = tmp_path / "bot.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"},
        "models": {"main": {"provider": "offline"}},
        "tenants": {"demo": {"agent": {"model": "main", "tools": ["clock"]}, "channels": {"websocket": {}}}},
    }), encoding="utf-8")
    server = ServerProcess(config, tmp_path / "server.log")
    await server.start()
    try:
        yield server.url
    finally:
        assert await server.stop() == 0


@pytest.mark.asyncio(loop_scope="module")
async def test_a_new_user_chats_uses_a_tool_and_finds_the_history_after_reload(
        browser: Browser, served: str) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    await page.goto(f"{served}/t/demo/chat?user=newcomer")
    box = page.get_by_role("textbox", name="Message")

    await box.fill("hello from the browser")
    await box.press("Enter")
    reply = page.locator("#log article.msg.assistant").last
    await expect(reply).to_contain_text("You said: hello from the browser", timeout=15_000)
    await expect(reply).to_contain_text("[offline model]")

    await box.fill("what time is it?")
    await box.press("Enter")
    await expect(page.locator("#log article.msg.assistant")).to_have_count(2, timeout=15_000)
    await expect(page.locator("#log article.msg.assistant").last).to_contain_text("clock tool says", timeout=15_000)

    await page.reload()
    await expect(page.locator("#log article.msg.user")).to_have_count(2, timeout=15_000)
    await expect(page.locator("#log article.msg.assistant").first).to_contain_text("hello from the browser")
    assert problems == []
    await context.close()
