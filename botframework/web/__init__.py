"""The web chat page, shipped as static files.

The server answers ``GET /t/{tenant}/chat`` with :data:`CHAT_PAGE` unchanged and ``GET /static/{file}``
from :data:`STATIC_DIR`; the page finds its tenant, assets and WebSocket from its own URL, so nothing
is templated.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHAT_PAGE", "STATIC_DIR"]

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
CHAT_PAGE: Path = STATIC_DIR / "chat.html"
