"""The web chat page, shipped as static files.

The channel that speaks the page's WebSocket frames serves ``GET /t/{tenant}/chat`` with
:func:`chat_page_response` (:data:`CHAT_PAGE` unchanged); the server serves ``GET /static/{file}`` from
:data:`STATIC_DIR`. The page finds its tenant, assets and WebSocket from its own URL, so nothing is
templated.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["CHAT_PAGE", "CHAT_PAGE_CSP", "STATIC_DIR", "chat_page_response"]

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
CHAT_PAGE: Path = STATIC_DIR / "chat.html"
CHAT_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; "
    "trusted-types chat-markdown"
)
"""Only the page's own assets and its own WebSocket; no inline script, so injected markup cannot run."""


def chat_page_response() -> web.FileResponse:
    return web.FileResponse(
        CHAT_PAGE,
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CHAT_PAGE_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
