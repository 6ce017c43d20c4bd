"""The aiohttp server: health, metrics, the web chat page's assets and every channel's routes per tenant.

Channel routes are registered once per path (``/t/{tenant}/slack/events``) and dispatched by tenant,
so an unknown tenant or a channel a tenant has not enabled is a plain 404 with no side effect.

``/healthz`` is public and names no tenant. ``/metrics`` names tenants and their volumes, so it is
not public: with ``server.admin_port`` it is served only on that separate listener; with
``server.metrics_token`` it needs ``Authorization: Bearer <token>``; with neither it answers only
when the server listens on a loopback address.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import signal
from collections import defaultdict
from collections.abc import Awaitable, Callable

from aiohttp import web

from botframework.health import health_report
from botframework.runtime import Runtime
from botframework.startup import listen_error
from botframework.unavailable import storage_unavailable_middleware
from botframework.web import STATIC_DIR

__all__ = ["RUNTIME_KEY", "build_admin_app", "build_app", "serve"]

log = logging.getLogger("botframework.server")

RUNTIME_KEY = web.AppKey("runtime", Runtime)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _not_found(message: str) -> web.Response:
    return web.json_response({"error": message}, status=404)


def _dispatcher(path: str, handlers: dict[str, Handler]) -> Handler:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        tenant = request.match_info["tenant"]
        handler = handlers.get(tenant)
        if handler is None:
            return _not_found(f"no such route for tenant {tenant!r}: {path}")
        return await handler(request)

    return dispatch


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _metrics_handler(runtime: Runtime, *, public: bool, host: str) -> Handler:
    """``/metrics`` as the public listener (``public``) or the admin listener serves it."""
    server = runtime.config.server

    async def metrics(request: web.Request) -> web.StreamResponse:
        if public and server.admin_port is not None:
            return _not_found("metrics are served on the admin listener (server.admin_port)")
        if server.metrics_token is not None:
            expected = f"Bearer {server.metrics_token.get_secret_value()}".encode()
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return web.json_response(
                    {"error": "metrics need Authorization: Bearer <server.metrics_token>"},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        elif public and not _is_loopback(host):
            return web.json_response(
                {"error": "metrics are not public: set server.admin_port or server.metrics_token"}, status=403
            )
        return web.Response(body=runtime.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})

    return metrics


def _healthz_handler(runtime: Runtime) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def healthz(_request: web.Request) -> web.Response:
        report = health_report(runtime.adapters.values(), storage=runtime.db.health.report())
        return web.json_response({**report, **await runtime.queue.health()})

    return healthz


def build_admin_app(runtime: Runtime) -> web.Application:
    """The admin listener's application: ``/metrics`` and ``/healthz``."""
    app = web.Application()
    app.router.add_get("/healthz", _healthz_handler(runtime))
    app.router.add_get("/metrics", _metrics_handler(runtime, public=False, host=runtime.config.server.admin_host))
    return app


def build_app(runtime: Runtime, *, host: str | None = None) -> web.Application:
    """The application; ``runtime`` starts and stops with it. ``host`` is the address it listens on
    (default ``server.host``): ``/metrics`` without a token answers only on a loopback address."""
    app = web.Application(
        client_max_size=runtime.config.server.max_body_bytes, middlewares=[storage_unavailable_middleware]
    )
    app[RUNTIME_KEY] = runtime
    healthz = _healthz_handler(runtime)
    metrics = _metrics_handler(runtime, public=True, host=host or runtime.config.server.host)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    if STATIC_DIR.is_dir():
        app.router.add_static("/static/", STATIC_DIR, append_version=False)

    table: dict[tuple[str, str], dict[str, Handler]] = defaultdict(dict)
    for (tenant, _channel), adapter in runtime.adapters.items():
        for route in adapter.routes():
            table[(route.method.upper(), f"/t/{{tenant}}/{route.path.lstrip('/')}")][tenant] = route.handler
    for (method, path), handlers in table.items():
        app.router.add_route(method, path, _dispatcher(path, handlers))

    async def on_startup(_app: web.Application) -> None:
        await runtime.start()

    async def on_shutdown(_app: web.Application) -> None:
        await runtime.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app


async def serve(runtime: Runtime, *, host: str, port: int, ready: Callable[[str], None] | None = None) -> None:
    """Run until SIGINT/SIGTERM, then finish in-flight turns (within the shutdown timeout) and exit."""
    app = build_app(runtime, host=host)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=runtime.config.server.shutdown_timeout_s
    )
    admin: web.AppRunner | None = None
    server = runtime.config.server
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise listen_error(exc, host=host, port=port) from None
        if server.admin_port is not None:
            admin = web.AppRunner(build_admin_app(runtime), handle_signals=False, access_log=None)
            await admin.setup()
            try:
                await web.TCPSite(admin, server.admin_host, server.admin_port).start()
            except OSError as exc:
                raise listen_error(exc, host=server.admin_host, port=server.admin_port, what="admin") from None
            log.info("metrics on the admin listener %s", admin.addresses)
    except BaseException:
        if admin is not None:
            await admin.cleanup()
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    url = f"http://{host}:{bound}"
    if ready is not None:
        ready(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down: finishing in-flight turns (up to %ss)", runtime.config.server.shutdown_timeout_s)
    finally:
        if admin is not None:
            await admin.cleanup()
        await runner.cleanup()
