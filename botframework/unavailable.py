"""While the database is down, a request that needed it is a 503, not a 500 with a traceback.

Webhook vendors retry a 503 (and a 500), but a 500 also means "bug" to whoever reads the logs, and
every one of them logged a traceback, so a short outage under load flooded the log. A channel's
handler translates the failures it expects itself; this middleware is the net under all of them:
a :class:`~botframework.errors.StorageError` that reaches it becomes ``503`` with ``Retry-After``
and one log line. Nothing was acknowledged: the handler did not return.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from botframework.errors import StorageError
from botframework.storage_health import describe

__all__ = ["RETRY_AFTER_S", "storage_unavailable_middleware"]

log = logging.getLogger("botframework.server")

RETRY_AFTER_S = 5


@web.middleware
async def storage_unavailable_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except StorageError as exc:
        log.warning("%s %s: storage unavailable (%s); answered 503", request.method, request.path, describe(exc))
        return web.json_response(
            {"error": "temporarily unavailable: the database does not answer; retry later"},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
