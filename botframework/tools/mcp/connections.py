"""Live sessions with MCP servers: one per server and credential scope, per process.

A :class:`McpConnection` is opened the first time a turn (or the probe) needs it, reused by every
turn of every tenant that shares it, and opened again after it broke. The SDK's ``Client`` is an
anyio context whose cancel scopes belong to the task that entered it, so each connection has an
*owner task* that enters the client, lists the tools, then waits: for a tools-changed notification
(re-list), for the transport to end (a stdio server that exited: the next call reconnects first),
or for :meth:`McpConnection.close`. Calls from turns run in their own tasks over the same session.

stdio servers are started by the SDK in a session (process group) of their own and stopped with
the connection: stdin closed, then SIGTERM and SIGKILL to the whole group. Their stderr is read by
us: each line goes to the debug log, and the last lines explain a server that fails to start.

After a failed connect the connection waits before trying again (5 s, doubling up to 5 minutes), so
a broken server costs a turn nothing but a skipped tool list; the failure is logged once per streak.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TextIO

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ListenNotSupportedError
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from botframework import __version__
from botframework.errors import McpServerError, ToolError
from botframework.tools.mcp.config import McpServerConfig

__all__ = ["McpConnection", "McpConnections", "McpListing"]

log = logging.getLogger("botframework.mcp")

RETRY_DELAYS_S = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0)
"""Waits before connecting again after the 1st, 2nd, ... failed connect in a row."""
_LIST_PAGES = 100
"""A server that paginates its tool list forever cannot hang a connect."""
_CLOSE_TIMEOUT_S = 10.0
"""The SDK stops a stdio server within about 6 s (stdin closed, 2 s, SIGTERM, 2 s, SIGKILL)."""
_CLIENT_INFO = mcp_types.Implementation(name="botframework", version=__version__)
_SDK_LOGGERS = (
    "client",
    "mcp.client.client",
    "mcp.client.stdio",
    "mcp.client.streamable_http",
    "mcp.shared.dispatcher",
    "mcp.shared.jsonrpc_dispatcher",
    "mcp.os.posix.utilities",
)
"""The SDK's client-side loggers; some log a misbehaving server with a traceback."""


class _OneLine(logging.Filter):
    """A server's misbehaviour is not our bug: the SDK's tracebacks become a one-line reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()}: {_describe(record.exc_info[1])}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


for _name in _SDK_LOGGERS:
    logging.getLogger(_name).addFilter(_OneLine())


@dataclass(frozen=True, slots=True)
class McpListing:
    """The tools a server listed, and which listing this is (it grows each time the server re-lists)."""

    tools: tuple[mcp_types.Tool, ...]
    generation: int


class McpConnection:
    """One session with one server for one credential scope (``tenant`` None: shared)."""

    def __init__(
        self, *, name: str, config: McpServerConfig, tenant: str | None = None, log_failures: bool = True
    ) -> None:
        """``log_failures`` False: failures are only raised (the probe prints them itself)."""
        self.name = name
        self._log_failures = log_failures
        self.tenant = tenant
        self.config = config.for_tenant(tenant)
        self.label = f"mcp_servers.{name}"
        """The YAML path naming this connection in logs and probe lines (plus the tenant of a
        ``connection: per_tenant`` one)."""
        if tenant is not None:
            self.label += f".per_tenant.{tenant}" if tenant in config.per_tenant else f" (tenant {tenant})"
        self._lock = asyncio.Lock()
        self._client: Client | None = None
        self._listing: McpListing | None = None
        self._owner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._relist = False
        self._lost = False
        self._generation = 0
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""
        self._http_refusal: int | None = None

    # -- state -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and not self._lost and self._owner is not None and not self._owner.done()

    @property
    def listing(self) -> McpListing | None:
        """The last tool list, when connected."""
        return self._listing if self.connected else None

    @property
    def last_error(self) -> str:
        return self._last_error

    # -- connecting --------------------------------------------------------------------------

    async def ensure(self) -> McpListing:
        """The server's tools, connecting first when needed. Raises McpServerError (at once while a
        failed connect is being waited out)."""
        listing = self.listing
        if listing is not None:
            return listing
        async with self._lock:
            listing = self.listing
            if listing is not None:
                return listing
            if self._closing:
                raise McpServerError(f"{self.label}: the connection is closed (the bot is stopping)")
            if time.monotonic() < self._retry_at:
                raise McpServerError(self._last_error)
            await self._reap()
            try:
                listing = await self._connect()
            except McpServerError as exc:
                self._failed(str(exc))
                raise
            if self._failures:
                log.info("%s: connected again after %d failed attempt(s)", self.label, self._failures)
            self._failures = 0
            self._last_error = ""
            return listing

    def _failed(self, reason: str) -> None:
        delay = RETRY_DELAYS_S[min(self._failures, len(RETRY_DELAYS_S) - 1)]
        self._failures += 1
        self._retry_at = time.monotonic() + delay
        if reason != self._last_error and self._log_failures:
            log.warning(
                "%s. Its tools are left out; trying again in %g s at the next turn that needs it", reason, delay
            )
        self._last_error = reason

    async def _connect(self) -> McpListing:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[McpListing] = loop.create_future()
        self._wake = asyncio.Event()
        self._relist = self._lost = False
        self._http_refusal = None
        stderr = _StderrTail(self.label) if self.config.transport == "stdio" else None
        self._owner = asyncio.create_task(self._own(ready, stderr), name=f"mcp {self.label}")
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                return await asyncio.shield(ready)
        except TimeoutError:
            reason = f"no answer within connect_timeout_s ({self.config.connect_timeout_s:g} s)"
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                self._stop_owner()
                raise
            reason = "closed while connecting (the bot is stopping)"  # close() stopped the owner task
        except Exception as exc:
            reason = self._refusal() or _describe(exc)
        finally:
            if not ready.done():
                ready.cancel()
        self._stop_owner()
        if stderr is not None:
            await asyncio.sleep(0)  # let the reader take what the server printed before it died
            reason += stderr.last_words()
        raise McpServerError(f"{self.label}: {reason}")

    def _refusal(self) -> str | None:
        """Why an HTTP server refused the connect, when it answered with an HTTP error status (the SDK
        reports those as a generic JSON-RPC error)."""
        status = self._http_refusal
        if status is None:
            return None
        hint = " (check headers: the server refused the credentials)" if status in (401, 403) else ""
        return f"HTTP {status} from {self.config.url}{hint}"

    async def _own(self, ready: asyncio.Future[McpListing], stderr: _StderrTail | None) -> None:
        """The owner task: enters the client, lists tools, then serves re-lists until closed or lost."""
        try:
            async with AsyncExitStack() as stack:
                if stderr is not None:
                    await stderr.start()
                    stack.push_async_callback(stderr.close)
                client = Client(
                    self._transport(stderr), message_handler=self._on_message, cache=None, client_info=_CLIENT_INFO
                )
                try:
                    await stack.enter_async_context(client)
                finally:
                    if stderr is not None:
                        stderr.close_writer()
                listing = await self._list(client)
                if ready.done():  # the connecting side gave up meanwhile
                    return
                self._client = client
                ready.set_result(listing)
                watcher = self._watch_changes(client)
                try:
                    await self._serve(client)
                finally:
                    if watcher is not None:
                        watcher.cancel()
                        await asyncio.gather(watcher, return_exceptions=True)
            if not self._closing:
                log.info("%s: the server closed the connection; it is opened again when next needed", self.label)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the owner task reports to the connecting turn, or logs the loss
            if not ready.done():
                ready.set_exception(exc)
            elif not self._closing:
                log.warning(
                    "%s: the connection broke (%s); it is opened again when next needed", self.label, _describe(exc)
                )
        finally:
            self._client = None
            if not ready.done():
                ready.cancel()

    @asynccontextmanager
    async def _transport(self, stderr: _StderrTail | None) -> AsyncIterator[Any]:
        cfg = self.config
        if cfg.command is not None:
            assert stderr is not None
            params = StdioServerParameters(
                command=cfg.command,
                args=list(cfg.args),
                env={k: v.get_secret_value() for k, v in cfg.env.items()},
                cwd=cfg.cwd,
            )
            async with stdio_client(params, errlog=stderr.writer) as (read, write):
                yield _WatchedRead(read, self._drop), write
            return
        assert cfg.url is not None

        async def note_refusal(response: httpx2.Response) -> None:
            if response.status_code >= 400:
                self._http_refusal = response.status_code

        http = httpx2.AsyncClient(
            headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
            timeout=httpx2.Timeout(cfg.connect_timeout_s, read=300.0),
            event_hooks={"response": [note_refusal]},
        )
        async with http, streamable_http_client(cfg.url, http_client=http) as streams:
            yield streams

    async def _list(self, client: Client) -> McpListing:
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(_LIST_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        self._generation += 1
        self._listing = McpListing(tools=tuple(tools), generation=self._generation)
        log.info("%s: %d tool(s): %s", self.label, len(tools), ", ".join(t.name for t in tools) or "none")
        return self._listing

    def _watch_changes(self, client: Client) -> asyncio.Task[None] | None:
        """On 2026-07-28 sessions change notifications are opt-in (``subscriptions/listen``); earlier
        servers send them unasked. Either way they reach :meth:`_on_message`."""
        caps = client.server_capabilities.tools
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS or caps is None or not caps.list_changed:
            return None

        async def listen() -> None:
            try:
                async with client.listen(tools_list_changed=True) as subscription:
                    async for _event in subscription:
                        self._request_relist()
            except (MCPError, ListenNotSupportedError, RuntimeError) as exc:
                log.info("%s: tool list changes are not followed (%s)", self.label, _describe(exc))

        return asyncio.create_task(listen(), name=f"mcp listen {self.label}")

    async def _serve(self, client: Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closing or self._lost:
                return
            if self._relist:
                self._relist = False
                try:
                    await self._list(client)
                except Exception as exc:
                    log.warning(
                        "%s: listing the changed tools failed (%s); the old list stays", self.label, _describe(exc)
                    )

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._request_relist()
        elif isinstance(message, Exception):
            log.debug("%s: transport reported %s", self.label, _describe(message))

    def _request_relist(self) -> None:
        self._relist = True
        self._wake.set()

    def _drop(self) -> None:
        """Give up this session (the server closed its end, or the transport failed): the owner task
        closes it, and the next call connects again first."""
        self._lost = True
        self._wake.set()

    # -- calling -----------------------------------------------------------------------------

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> mcp_types.CallToolResult:
        """Call ``tool``; transport failures become McpServerError (the connection reopens next time),
        protocol errors a ToolError. Either way the model reads what went wrong."""
        await self.ensure()
        client = self._client
        if client is None:
            raise McpServerError(f"{self.label}: the connection closed before the call")
        try:
            return await client.call_tool(tool, dict(arguments))
        except MCPError as exc:
            if exc.code == mcp_types.CONNECTION_CLOSED:
                self._drop()
                raise McpServerError(
                    f"{self.label}: the connection was lost during the call; it is opened again at the next call"
                ) from None
            raise ToolError(f"MCP server {self.name!r} refused the call: {exc.message}") from None
        except ValidationError as exc:
            raise ToolError(
                f"MCP server {self.name!r} answered with a result that does not follow the protocol "
                f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})"
            ) from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, httpx2.TransportError) as exc:
            self._drop()
            raise McpServerError(f"{self.label}: {_describe(exc)}; it is opened again at the next call") from None

    # -- closing -----------------------------------------------------------------------------

    def _stop_owner(self) -> None:
        if self._owner is not None and not self._owner.done():
            self._owner.cancel()

    async def _reap(self) -> None:
        """Wait for a previous owner task to finish (it stops its server)."""
        owner, self._owner = self._owner, None
        if owner is None:
            return
        if not owner.done():
            self._drop()
            await asyncio.wait({owner}, timeout=_CLOSE_TIMEOUT_S)
            owner.cancel()
        await asyncio.gather(owner, return_exceptions=True)

    async def close(self) -> None:
        """Close the session; a stdio server is stopped (its whole process group). A connect under
        way is given up rather than waited for."""
        self._closing = True
        self._wake.set()
        if self._client is None:
            self._stop_owner()
        async with self._lock:
            await self._reap()
            self._listing = None


class McpConnections:
    """Every connection of this process, keyed by (server, scope); created on first request."""

    def __init__(self, servers: Mapping[str, McpServerConfig]) -> None:
        self.servers = dict(servers)
        self._connections: dict[tuple[str, str | None], McpConnection] = {}
        self._closed = False

    def for_tenant(self, server: str, tenant: str) -> McpConnection:
        """The connection ``tenant`` uses for ``server``: shared, or its own (own credentials, or
        ``connection: per_tenant``). Tenants never see a connection opened with another's credentials."""
        config = self.servers[server]
        key = (server, config.scope_for(tenant))
        found = self._connections.get(key)
        if found is None:
            found = McpConnection(name=server, config=config, tenant=key[1])
            self._connections[key] = found
        return found

    @property
    def connections(self) -> list[McpConnection]:
        return list(self._connections.values())

    async def close(self) -> None:
        """Close every connection (stdio servers stop); called by ``Runtime.stop``."""
        self._closed = True
        await asyncio.gather(*(c.close() for c in self._connections.values()), return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class _WatchedRead:
    """A transport read stream that reports its end (the server closed its side)."""

    def __init__(self, inner: Any, on_eof: Callable[[], None]) -> None:
        self._inner = inner
        self._on_eof = on_eof

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_eof()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedRead:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedRead:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _StderrTail:
    """A stdio server's stderr: every line to the debug log, the last few kept to explain a failure."""

    def __init__(self, label: str) -> None:
        self.label = label
        read_fd, write_fd = os.pipe()
        self.writer: TextIO = os.fdopen(write_fd, "w")
        self._read_fd = read_fd
        self._lines: deque[str] = deque(maxlen=20)
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.ReadTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(self._read_fd, "rb", 0)
        self._transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        self._task = asyncio.create_task(self._pump(reader), name=f"mcp stderr {self.label}")

    def close_writer(self) -> None:
        """Our copy of the write end; once closed, the pipe ends when the server exits."""
        with contextlib.suppress(OSError):
            self.writer.close()

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        pending = b""
        while chunk := await reader.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-4096:]
            for raw in lines:
                self._keep(raw)
        self._keep(pending)

    def _keep(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip()
        if line:
            self._lines.append(line[:500])
            log.debug("%s stderr: %s", self.label, line)

    def last_words(self) -> str:
        """The server's last stderr lines, for an error message ("" when it printed nothing)."""
        if not self._lines:
            return ""
        return "; the server printed: " + " | ".join(list(self._lines)[-3:])

    async def close(self) -> None:
        self.close_writer()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 1.0)
            except TimeoutError:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()


def _describe(exc: BaseException) -> str:
    """A one-line reason for an SDK, transport or OS failure (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, FileNotFoundError):
        return f"cannot start {exc.filename or 'the command'}: no such file (check command and PATH)"
    if isinstance(exc, PermissionError):
        return f"cannot start {exc.filename or 'the command'}: permission denied"
    if isinstance(exc, MCPError):
        if exc.code == mcp_types.CONNECTION_CLOSED:
            return "the server closed the connection before answering"
        return f"the server answered with an error ({exc.code}: {exc.message})"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {exc.request.url}"
    if isinstance(exc, httpx2.TransportError):
        return f"cannot reach the server ({type(exc).__name__}: {exc or 'no detail'})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
