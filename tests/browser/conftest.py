"""Fixtures for the web chat browser tests: one headless Chromium per module, a fresh context per test.

``chat_site`` is the server under test as the portable :class:`ChatSite` surface; ``fake_server``
is the same object with the fake-only controls. To run the portable tests against ``botframework
serve``, override ``chat_site`` with an object that starts the real server (pointing its model at a
scripted fake) and implements ``ChatSite``; tests that request ``fake_server`` stay on the fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from webchat_backend import ChatSite, FakeChatServer
from webchat_page import CHROMIUM, CHROMIUM_ARGS, OpenChat, PageProbe

# Generous waits: a loaded 2-core CI machine can be slow; a waiting check only takes longer when it fails.
WAIT_MS = 15_000
expect.set_options(timeout=WAIT_MS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run "
                    "the browser tests")
    async with async_playwright() as pw:
        # launch() (not launch_persistent_context) runs on a fresh temporary user-data dir of its own.
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def fake_server() -> AsyncIterator[FakeChatServer]:
    server = FakeChatServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture(loop_scope="module")
async def chat_site(fake_server: FakeChatServer) -> ChatSite:
    return fake_server


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context(viewport={"width": 900, "height": 720})
    ctx.set_default_timeout(WAIT_MS)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest_asyncio.fixture(loop_scope="module")
async def open_chat(context: BrowserContext, chat_site: ChatSite) -> OpenChat:
    """Open the chat page in the test's browser context and wait until it is connected."""

    async def _open(*, user: str | None = "alice", token: str | None = None, connected: bool = True,
                    page: Page | None = None) -> tuple[Page, PageProbe]:
        page = page or await context.new_page()
        probe = PageProbe(base_url=chat_site.base_url)
        page.on("pageerror", lambda exc: probe.errors.append(str(exc)))
        page.on("console", probe.console_message)
        page.on("request", lambda req: probe.requests.append(req.url))
        page.on("websocket", lambda ws: probe.requests.append(ws.url))
        await page.goto(chat_site.page_url(user=user, token=token))
        if connected:
            await page.locator('#status[data-state="online"]').wait_for()
        return page, probe

    return _open
