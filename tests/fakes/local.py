"""Start a vendor fake's aiohttp app on 127.0.0.1 with a free port (every fake listens on port 0)."""

from __future__ import annotations

from aiohttp import web

__all__ = ["serve_local"]


async def serve_local(app: web.Application) -> tuple[web.AppRunner, int]:
    """Start ``app``; return its runner (``cleanup()`` stops it) and the port it got."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]
