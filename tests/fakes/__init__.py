"""Fake model servers for tests: small aiohttp apps on 127.0.0.1, port 0, that the official SDKs talk to.

Two servers share this module's vocabulary:

- :class:`tests.fakes.openai_server.FakeOpenAIServer`: ``POST /v1/chat/completions`` (stream and
  non-stream, ``stream_options.include_usage``), OpenAI's error bodies; ``base_url`` ends in ``/v1``.
- :class:`tests.fakes.anthropic_server.FakeAnthropicServer`: ``POST /v1/messages`` with Anthropic's
  SSE event sequence and error bodies; ``base_url`` is the root (the SDK adds ``/v1/messages``).

Every request is RECORDED (:class:`RecordedRequest`: method, path, headers, parsed JSON body, raw
bytes, arrival time) in ``server.requests``, so tests assert on what was actually sent, and when.

Behaviour is scripted with a queue of steps (``server.push(step, ...)``), consumed one per request;
when the queue is empty the ``default`` responder (a callable taking the RecordedRequest and
returning a step, sync or async) decides, and without one the answer is ``Reply(text="ok")``.
The same step means the same thing to both servers, rendered in each protocol:

=====================  =====================================================================
``Reply``              a normal answer: text and/or tool calls, usage, finish reason
``Fail``               an HTTP error: status, body, headers (see each server's helpers, e.g.
                       ``openai_error``, ``rate_limited``, ``overloaded``)
``Disconnect``         stream ``after_chunks`` chunks, then drop the TCP connection
                       (non-stream: drop before answering)
``Truncated``          stream some text and end the stream cleanly WITHOUT a finish reason
``StreamError``        an error event inside a 200 stream after ``after_chunks`` chunks
``Hang``               accept the request and never answer (until the client gives up)
=====================  =====================================================================

Both servers validate the tool/message protocol the way the real APIs do (``validate=True``):
a request that breaks it gets the vendor's 400 ``invalid_request_error`` and the problems are
listed in ``server.protocol_errors``; the check functions are exported for direct use
(``openai_protocol_problems``, ``anthropic_protocol_problems``). With ``context_window`` set, the
prompt is counted with cl100k_base (offline copy) and an oversized request gets the vendor's real
context-overflow 400.

Use as an async context manager (``async with FakeOpenAIServer() as server: ...``) or through
the pytest fixtures ``fake_openai`` / ``fake_anthropic`` (import them into a conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = [
    "Disconnect",
    "Fail",
    "FakeModelServer",
    "Hang",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Step",
    "StreamError",
    "ToolCallSpec",
    "Truncated",
    "split_text",
]


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    """One request as the fake server received it. ``headers`` keys are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw: bytes
    received_at: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the request was read: tests check pacing (Retry-After) on it."""

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []


@dataclass(frozen=True, kw_only=True)
class ToolCallSpec:
    """A tool call in a scripted reply. ``arguments`` is sent verbatim (it may be malformed JSON)."""

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A successful answer.

    ``finish_reason=None`` picks the natural one (``stop``/``tool_calls`` for OpenAI,
    ``end_turn``/``tool_use`` for Anthropic); any other string is sent as is (e.g. ``length``,
    ``function_call``, ``max_tokens``). Token counts default to the server's own count.
    """

    text: str = ""
    tool_calls: Sequence[ToolCallSpec] = ()
    finish_reason: str | None = None
    chunks: int = 3
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    model: str | None = None
    usage: bool = True
    """False: the stream carries no usage (some compatible servers never send it)."""
    chunk_delay_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Fail:
    """An HTTP error response. ``body``: a dict (sent as JSON), a str (sent as text) or None."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Disconnect:
    """Stream ``after_chunks`` text chunks of ``text``, then drop the connection mid-body."""

    text: str = "This answer will be cut off in the middle"
    after_chunks: int = 2


@dataclass(frozen=True, kw_only=True)
class Truncated:
    """Stream ``text`` and end the stream cleanly, but never send a finish reason."""

    text: str = "This answer has no finish reason"
    chunks: int = 2


@dataclass(frozen=True, kw_only=True)
class StreamError:
    """A 200 stream that carries an error event after ``after_chunks`` text chunks."""

    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    code: str | None = None
    after_chunks: int = 1
    text: str = "Partial text before the error"


@dataclass(frozen=True, kw_only=True)
class Hang:
    """Never answer (after ``after_chunks`` streamed chunks, if any); ends when the server closes."""

    seconds: float = 3600.0
    after_chunks: int = 0
    text: str = "Slow answer that never finishes"


Step = Reply | Fail | Disconnect | Truncated | StreamError | Hang
Responder = Callable[[RecordedRequest], "Step | Awaitable[Step]"]


def split_text(text: str, n: int) -> list[str]:
    """``text`` in ``n`` nearly equal pieces (fewer when it is short); '' gives []."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


class FakeModelServer:
    """Base of the fake servers: the aiohttp app, the step queue and the request record."""

    route: str = "/"

    def __init__(
        self,
        *,
        default: Responder | None = None,
        context_window: int | None = None,
        validate: bool = True,
        model: str = "fake-model",
    ) -> None:
        self.default = default
        self.context_window = context_window
        self.validate = validate
        self.model = model
        self.steps: deque[Step] = deque()
        self.requests: list[RecordedRequest] = []
        self.protocol_errors: list[list[str]] = []
        self.auth_errors: list[str] = []
        self._closing = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._counter = 0

    # -- scripting -------------------------------------------------------------------------
    def push(self, *steps: Step) -> Self:
        """Queue steps; each request consumes one."""
        self.steps.extend(steps)
        return self

    async def _next_step(self, recorded: RecordedRequest) -> Step:
        if self.steps:
            return self.steps.popleft()
        if self.default is not None:
            step = self.default(recorded)
            if isinstance(step, Awaitable):
                step = await step
            return step
        return Reply(text="ok")

    async def wait_for_requests(self, count: int = 1) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests were received (e.g. one that is now hanging).

        Gives up after 5 s (wrap it in ``asyncio.timeout`` for another bound)."""
        async with asyncio.timeout(5.0), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests[:count]

    def next_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the fake server is not started")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    async def start(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- request handling ------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            raw=raw,
        )
        self.requests.append(recorded)
        async with self._arrived:
            self._arrived.notify_all()
        if request.method != "POST" or not self.route_matches(request):
            return web.json_response(self.not_found_body(request.path), status=404)
        refused = self.auth_problem(request)
        if refused is not None:
            self.auth_errors.append(refused.text or str(refused.status))
            return refused
        if not isinstance(body, dict):
            return web.json_response(self.invalid_request_body("the body must be a JSON object"), status=400)
        if self.validate:
            problems = self.protocol_problems(body)
            if problems:
                self.protocol_errors.append(problems)
                return web.json_response(self.invalid_request_body("; ".join(problems)), status=400)
        if self.context_window is not None:
            overflow = self.overflow_response(body)
            if overflow is not None:
                return overflow
        step = await self._next_step(recorded)
        if isinstance(step, Fail):
            return self.fail_response(step)
        if isinstance(step, Hang) and not self.is_stream(recorded):
            await self.hang(step.seconds)
            return web.Response(status=504)
        if isinstance(step, Disconnect) and not self.is_stream(recorded):
            self.drop(request)
            return web.Response(status=500)
        return await self.render(request, recorded, step)

    async def hang(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    @staticmethod
    def drop(request: web.Request) -> None:
        """Close the TCP connection without finishing the response."""
        transport = request.transport
        if transport is not None:
            transport.close()

    def fail_response(self, step: Fail) -> web.Response:
        headers = dict(step.headers)
        if isinstance(step.body, str):
            return web.Response(status=step.status, text=step.body, headers=headers)
        if step.body is None:
            return web.Response(status=step.status, headers=headers)
        return web.json_response(step.body, status=step.status, headers=headers)

    @staticmethod
    async def sse(response: web.StreamResponse, data: str, *, event: str | None = None) -> None:
        frame = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
        await response.write(frame.encode())

    @staticmethod
    async def start_sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        return response

    # -- protocol hooks (subclasses) -------------------------------------------------------
    def route_matches(self, request: web.Request) -> bool:
        return request.path == self.route

    def auth_problem(self, request: web.Request) -> web.Response | None:
        """The vendor's refusal when the request's credentials are missing or wrong (checked first)."""
        return None

    def is_stream(self, recorded: RecordedRequest) -> bool:
        return recorded.stream

    def protocol_problems(self, body: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def overflow_response(self, body: dict[str, Any]) -> web.Response | None:
        raise NotImplementedError

    def invalid_request_body(self, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def not_found_body(self, path: str) -> dict[str, Any]:
        raise NotImplementedError

    async def render(self, request: web.Request, recorded: RecordedRequest, step: Step) -> web.StreamResponse:
        raise NotImplementedError
