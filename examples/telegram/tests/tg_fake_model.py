"""A local OpenAI-compatible model server (``POST /v1/chat/completions``) that records every request.

It answers ``You said: <last user text>``, streamed (server-sent events ending in ``[DONE]``) or
not, as the request asks. ``base_url`` ends in ``/v1``, as the openai provider's ``base_url`` does.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

__all__ = ["FakeModel"]


class FakeModel:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> FakeModel:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def user_texts(self) -> list[str]:
        """The last user message of every request, in order."""
        out = []
        for body in self.requests:
            content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
            out.append(content if isinstance(content, str) else "".join(p.get("text", "") for p in content))
        return out

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        text = f"You said: {self.user_texts()[-1]}"
        base = {"id": f"chatcmpl-{len(self.requests)}", "created": int(time.time()), "model": body["model"]}
        usage = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunks = [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None},
            {"index": 0, "delta": {"content": text}, "finish_reason": None},
            {"index": 0, "delta": {}, "finish_reason": "stop"},
        ]
        for choice in chunks:
            event = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        if (body.get("stream_options") or {}).get("include_usage"):
            event = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
