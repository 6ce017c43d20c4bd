"""A fake Cohere Chat API v2: ``POST /v2/chat``, streaming and not, driven by the ``cohere`` SDK.

Checks a ``Authorization: Bearer <api_key>`` (401 ``invalid api token`` otherwise), ``model`` and a
non-empty ``messages``, roles, function tool names, and the tool protocol: an assistant message's
``tool_calls`` must be answered, each by id, by the ``tool`` messages right after it, and no tool
message may answer anything else. Errors are ``{"id", "message"}`` with the status.

Streams are SSE events (``event: <type>`` and ``data: {"type": ...}``): ``message-start``,
``content-start``/``content-delta``/``content-end`` for text, ``tool-plan-delta`` and
``tool-call-start``/``tool-call-delta``/``tool-call-end`` when it calls tools, and ``message-end``
with ``finish_reason`` (``COMPLETE``, ``TOOL_CALL``, ``MAX_TOKENS``...) and usage. With
``context_window``, an oversized prompt gets Cohere's "too many tokens: ... cannot exceed M -
received N" 400. Helpers: :func:`cohere_error`, :func:`too_many_requests`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from botframework.models.tokens import encoding
from tests.fakes import (
    Disconnect,
    Fail,
    FakeModelServer,
    Hang,
    RecordedRequest,
    Reply,
    Step,
    StreamError,
    Truncated,
    split_text,
)

__all__ = ["FakeCohereServer", "cohere_error", "cohere_protocol_problems", "too_many_requests"]

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def cohere_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> Fail:
    return Fail(status=status, body={"id": "err-fake", "message": message}, headers=headers or {})


def too_many_requests(retry_after: float = 1) -> Fail:
    return cohere_error(
        429,
        "You are using a Trial key, which is limited to 20 API calls / minute.",
        headers={"retry-after": f"{retry_after:g}"},
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def count_prompt_tokens(body: dict[str, Any]) -> int:
    enc = encoding()
    total = 0
    for m in body.get("messages", []):
        text = _text(m.get("content")) + str(m.get("tool_plan", "")) + json.dumps(m.get("tool_calls") or [])
        total += 4 + len(enc.encode(text, disallowed_special=()))
    if body.get("tools"):
        total += len(enc.encode(json.dumps(body["tools"]), disallowed_special=()))
    return total


def cohere_protocol_problems(body: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model: required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "messages: must not be empty"]
    for i, tool in enumerate(body.get("tools") or ()):
        fn = tool.get("function", {})
        if tool.get("type") != "function" or not _NAME.match(str(fn.get("name", ""))):
            problems.append(f"tools[{i}]: invalid function tool")
    pending: list[str] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            problems.append(f"messages[{i}].role: invalid {role!r}")
            continue
        if role == "tool":
            if m.get("tool_call_id") not in pending:
                problems.append(f"messages[{i}]: tool message answers no pending tool call ({m.get('tool_call_id')!r})")
            else:
                pending.remove(m["tool_call_id"])
            continue
        if pending:
            problems.append(f"messages[{i}]: tool calls {pending} were not answered before this message")
            pending = []
        if role == "assistant":
            calls = m.get("tool_calls") or []
            for j, call in enumerate(calls):
                if not call.get("id") or not isinstance(call.get("function", {}).get("arguments"), str):
                    problems.append(f"messages[{i}].tool_calls[{j}]: needs an id and string arguments")
            pending = [str(c.get("id")) for c in calls]
            if not calls and not isinstance(m.get("content"), str | list):
                problems.append(f"messages[{i}]: an assistant message needs content or tool_calls")
    if pending:
        problems.append(f"tool calls {pending} were not answered")
    return problems


class FakeCohereServer(FakeModelServer):
    route = "/v2/chat"

    def __init__(self, *, api_key: str = "cohere-test-key", **kw: Any) -> None:
        super().__init__(**kw)
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        return self.origin

    def auth_problem(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return self.fail_response(cohere_error(401, "invalid api token"))

    def protocol_problems(self, body: dict[str, Any]) -> list[str]:
        return cohere_protocol_problems(body)

    def invalid_request_body(self, message: str) -> dict[str, Any]:
        return {"id": "err-fake", "message": message}

    def not_found_body(self, path: str) -> dict[str, Any]:
        return {"id": "err-fake", "message": f"{path} not found"}

    def overflow_response(self, body: dict[str, Any]) -> web.Response | None:
        assert self.context_window is not None
        prompt = count_prompt_tokens(body)
        if prompt + int(body.get("max_tokens") or 0) <= self.context_window:
            return None
        return self.fail_response(
            cohere_error(
                400,
                f"too many tokens: total number of tokens in the prompt cannot exceed {self.context_window} - "
                f"received {prompt}. Try using a shorter message.",
            )
        )

    def _usage(self, recorded: RecordedRequest, step: Reply) -> dict[str, Any]:
        prompt = step.input_tokens if step.input_tokens is not None else count_prompt_tokens(recorded.body)
        if step.output_tokens is not None:
            output = step.output_tokens
        else:
            out = step.text + "".join(c.name + c.arguments for c in step.tool_calls)
            output = len(encoding().encode(out, disallowed_special=()))
        return {
            "billed_units": {"input_tokens": max(prompt - 10, 0), "output_tokens": output},
            "tokens": {"input_tokens": prompt, "output_tokens": output},
            "cached_tokens": step.cached_tokens,
        }

    @staticmethod
    def _finish(step: Reply) -> str:
        return step.finish_reason or ("TOOL_CALL" if step.tool_calls else "COMPLETE")

    async def _event(self, response: web.StreamResponse, data: dict[str, Any]) -> None:
        await self.sse(response, json.dumps(data), event=data["type"])

    async def render(self, request: web.Request, recorded: RecordedRequest, step: Step) -> web.StreamResponse:
        calls = [
            {
                "id": c.id or self.next_id("fake_call_"),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in (step.tool_calls if isinstance(step, Reply) else ())
        ]
        if not recorded.stream:
            assert isinstance(step, Reply), f"{type(step).__name__} needs a streaming request"
            message: dict[str, Any] = {"role": "assistant"}
            if calls:
                message["tool_calls"] = calls
                if step.text:
                    message["tool_plan"] = step.text
            else:
                message["content"] = [{"type": "text", "text": step.text}]
            return web.json_response(
                {
                    "id": self.next_id("chat-"),
                    "finish_reason": self._finish(step),
                    "message": message,
                    "usage": self._usage(recorded, step),
                }
            )
        response = await self.start_sse(request)
        await self._event(
            response, {"type": "message-start", "id": "chat-fake", "delta": {"message": {"role": "assistant"}}}
        )
        if isinstance(step, Reply):
            pieces = split_text(step.text, step.chunks)
            if calls:
                for piece in pieces:
                    await self._event(response, {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
                for i, call in enumerate(calls):
                    first = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
                    await self._event(
                        response, {"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls": first}}}
                    )
                    for frag in split_text(call["function"]["arguments"], 3):
                        await self._event(
                            response,
                            {
                                "type": "tool-call-delta",
                                "index": i,
                                "delta": {"message": {"tool_calls": {"function": {"arguments": frag}}}},
                            },
                        )
                    await self._event(response, {"type": "tool-call-end", "index": i})
            else:
                await self._text(response, pieces, delay=step.chunk_delay_s)
            end: dict[str, Any] = {"finish_reason": self._finish(step)}
            if step.usage:
                end["usage"] = self._usage(recorded, step)
            await self._event(response, {"type": "message-end", "delta": end})
        elif isinstance(step, Truncated):
            await self._text(response, split_text(step.text, step.chunks))
        elif isinstance(step, Disconnect | Hang | StreamError):
            await self._text(
                response, split_text(step.text, max(step.after_chunks, 1))[: step.after_chunks], close=False
            )
            if isinstance(step, StreamError):
                await self._event(
                    response, {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": step.message}}
                )
            else:
                if isinstance(step, Hang):
                    await self.hang(step.seconds)
                self.drop(request)
                return response
        await response.write_eof()
        return response

    async def _text(
        self, response: web.StreamResponse, pieces: list[str], *, close: bool = True, delay: float = 0.0
    ) -> None:
        await self._event(
            response,
            {"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        )
        for piece in pieces:
            await self._event(
                response, {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}}
            )
            if delay:
                await self.hang(delay)
        if close:
            await self._event(response, {"type": "content-end", "index": 0})
