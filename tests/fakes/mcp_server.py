"""A real MCP server for tests: the official SDK's ``MCPServer`` over Streamable HTTP on 127.0.0.1,
port 0, served by uvicorn in the test's own event loop.

It records what it received: every HTTP request's ``Authorization`` header and MCP method
(``requests``) and every tool call with its arguments (``calls``). Its tools:

``lookup_ticket(ticket_id)``  a ticket's text          ``hang()``    never returns
``chart()``                   text and a PNG image    ``broken()``  an ``isError`` result
``grow()``                    adds the tool ``extra_tool`` and announces that the tool list changed

``extra_tools`` adds more (name -> description) that echo their arguments, for name-clash tests.
Use it as an async context manager, or ``with server.in_thread():`` from synchronous code (its own
event loop in a thread), e.g. around ``botframework.cli.main``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ImageContent, TextContent

__all__ = ["PNG_1X1", "McpHttpServer", "SeenRequest"]

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class SeenRequest:
    http_method: str
    authorization: str | None
    mcp_method: str | None


class McpHttpServer:
    def __init__(self, name: str = "tickets", *, extra_tools: dict[str, str] | None = None) -> None:
        self.name = name
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[SeenRequest] = []
        self.mcp = MCPServer(name, log_level="WARNING")
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        self._register(extra_tools or {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def _register(self, extra: dict[str, str]) -> None:
        calls = self.calls

        @self.mcp.tool(description="Look a ticket up by its id.")
        def lookup_ticket(ticket_id: str) -> str:
            calls.append(("lookup_ticket", {"ticket_id": ticket_id}))
            return f"Ticket {ticket_id}: the printer on floor 3 is on fire (status: open)"

        @self.mcp.tool(description="Never finishes.")
        async def hang() -> str:
            calls.append(("hang", {}))
            await anyio.sleep(3600)
            return "late"

        @self.mcp.tool(description="A chart of this week's tickets, as an image.")
        def chart() -> CallToolResult:
            calls.append(("chart", {}))
            return CallToolResult(
                content=[
                    TextContent(text="Tickets per day:"),
                    ImageContent(data=base64.b64encode(PNG_1X1).decode(), mime_type="image/png"),
                ]
            )

        @self.mcp.tool(description="Always fails.")
        def broken() -> CallToolResult:
            calls.append(("broken", {}))
            return CallToolResult(content=[TextContent(text="the ticket database is down")], is_error=True)

        @self.mcp.tool(description="Adds a tool.")
        async def grow(ctx: Context) -> str:
            calls.append(("grow", {}))

            def extra_tool(note: str) -> str:
                calls.append(("extra_tool", {"note": note}))
                return f"noted: {note}"

            self.mcp.add_tool(extra_tool, description="Added at run time.")
            await ctx.notify_tools_changed()
            await ctx.request_context.session.send_tool_list_changed()
            return "added extra_tool"

        for tool_name, description in extra.items():
            self._add_echo(tool_name, description)

    def _add_echo(self, tool_name: str, description: str) -> None:
        def echo(text: str) -> str:
            self.calls.append((tool_name, {"text": text}))
            return f"{self.name}/{tool_name}: {text}"

        self.mcp.add_tool(echo, name=tool_name, description=description)

    def _recording(self, app: Any) -> Any:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
            body = b""
            more = True
            buffered: list[Message] = []
            while more and scope["method"] == "POST":
                message = await receive()
                buffered.append(message)
                body += message.get("body", b"")
                more = message.get("more_body", False)
            try:
                method = json.loads(body).get("method") if body else None
            except (ValueError, AttributeError):
                method = None
            self.requests.append(SeenRequest(scope["method"], headers.get("authorization"), method))

            async def replay() -> Message:
                return buffered.pop(0) if buffered else await receive()

            await app(scope, replay, send)

        return wrapped

    async def __aenter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._recording(self.mcp.streamable_http_app()),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(500):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if not self._server.started:
            raise RuntimeError("the MCP test server did not start")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, 10)
            except TimeoutError:
                self._task.cancel()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[Self]:
        ready = threading.Event()
        loop: asyncio.AbstractEventLoop | None = None
        stop: asyncio.Event | None = None
        failure: list[BaseException] = []

        async def main() -> None:
            nonlocal loop, stop
            loop, stop = asyncio.get_running_loop(), asyncio.Event()
            try:
                async with self:
                    ready.set()
                    await stop.wait()
            except BaseException as exc:
                failure.append(exc)
                ready.set()

        thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            assert loop is not None and stop is not None
            loop.call_soon_threadsafe(stop.set)
            thread.join(30)
