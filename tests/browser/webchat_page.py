"""Browser-side helpers shared by the web chat tests: how Chromium is launched, what a page reported."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import ConsoleMessage, Page

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "OpenChat", "PageProbe"]

CHROMIUM = Path(os.environ.get("BOTFRAMEWORK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class PageProbe:
    """Problems the page reported: uncaught exceptions, console errors, off-site requests."""

    base_url: str
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def off_site(self) -> list[str]:
        ws_base = "ws" + self.base_url.removeprefix("http")
        return [u for u in self.requests if not (u.startswith(self.base_url) or u.startswith(ws_base))]

    def policy_violations(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m or "Trusted Type" in m]

    def console_message(self, msg: ConsoleMessage) -> None:
        if msg.type in {"error", "warning"}:
            self.console.append(msg.text)


OpenChat = Callable[..., Awaitable[tuple[Page, PageProbe]]]
