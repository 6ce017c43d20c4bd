"""A fake OpenAI-compatible server: ``POST /v1/chat/completions``, streaming and not.

See :mod:`tests.fakes` for the step vocabulary. Specific to this server:

- ``base_url`` is ``http://127.0.0.1:<port>/v1`` (what ``AsyncOpenAI(base_url=...)`` takes).
- Streams follow OpenAI's chunk sequence: a role chunk, content deltas, tool-call deltas (id and
  name first, then argument fragments, keyed by ``index``), a chunk with ``finish_reason``, then,
  when the request asked ``stream_options.include_usage``, a usage chunk with empty ``choices``,
  then ``data: [DONE]``.
- A ``StreamError`` is sent as ``data: {"error": {...}}`` inside the 200 stream.
- ``context_window``: the prompt is counted with cl100k_base (OpenAI cookbook: 3 tokens per
  message plus every value, +1 per name, +3 priming; tool schemas as their JSON; 765 per image)
  and prompt + ``max_tokens`` (or ``max_completion_tokens``) above it gets the real 400
  ``context_length_exceeded`` body.
- Helpers build the real error bodies: :func:`openai_error`, :func:`rate_limited`,
  :func:`insufficient_quota`, :func:`context_length_exceeded`, :func:`server_error`.
- :class:`Chaos` is a seeded ``default`` responder for fault tests: a share of requests gets 429
  with ``retry-after-ms``, a share has its stream dropped mid-answer, the rest are answered; its
  ``outcomes`` say which request got what.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from botframework.models.tokens import count_chat_tokens, encoding
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

__all__ = [
    "Chaos",
    "FakeOpenAIServer",
    "context_length_exceeded",
    "count_prompt_tokens",
    "fake_openai",
    "insufficient_quota",
    "openai_error",
    "openai_protocol_problems",
    "rate_limited",
    "server_error",
]

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROLES = {"system", "developer", "user", "assistant", "tool"}
IMAGE_TOKENS = 765


def openai_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Fail:
    """An error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    return Fail(
        status=status,
        body={"error": {"message": message, "type": type, "param": param, "code": code}},
        headers=headers or {},
    )


def rate_limited(retry_after: float | str | None = 1, *, retry_after_ms: float | None = None) -> Fail:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return openai_error(
        429,
        "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1.",
        type="requests",
        code="rate_limit_exceeded",
        headers=headers,
    )


def insufficient_quota() -> Fail:
    return openai_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        type="insufficient_quota",
        code="insufficient_quota",
    )


def context_length_exceeded(limit: int = 8192, messages: int = 9000, completion: int = 1000) -> Fail:
    return openai_error(
        400,
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{messages + completion} tokens ({messages} in the messages, {completion} in the completion). "
        "Please reduce the length of the messages or completion.",
        param="messages",
        code="context_length_exceeded",
    )


def server_error(status: int = 500) -> Fail:
    return openai_error(
        status,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )


@dataclass
class Chaos:
    """A seeded responder: ``rate_limited`` of the requests get a 429 with ``retry-after-ms``,
    ``dropped`` of them stream part of an answer and lose the connection, the rest are answered by
    ``answer``. ``outcomes`` pairs each request with what it got (``ok``, ``429``, ``drop``)."""

    seed: int
    rate_limited: float = 0.3
    dropped: float = 0.1
    retry_after_s: float = 0.2
    answer: Callable[[RecordedRequest], Reply] = field(default=lambda r: Reply(text="ok"))
    outcomes: list[tuple[RecordedRequest, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def __call__(self, request: RecordedRequest) -> Step:
        roll = self._random.random()
        if roll < self.rate_limited:
            self.outcomes.append((request, "429"))
            return rate_limited(retry_after=None, retry_after_ms=self.retry_after_s * 1000)
        if roll < self.rate_limited + self.dropped:
            self.outcomes.append((request, "drop"))
            return Disconnect(text="An answer that never arrives in full", after_chunks=1)
        self.outcomes.append((request, "ok"))
        return self.answer(request)


def _content_text(content: Any) -> tuple[str, int]:
    """Text of a message's content and the number of images in it."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    texts: list[str] = []
    images = 0
    for part in content:
        if part.get("type") == "text":
            texts.append(part.get("text", ""))
        elif part.get("type") == "image_url":
            images += 1
    return "".join(texts), images


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """The fake's prompt count for a chat completions body (see the module docstring)."""
    enc = encoding()
    flat: list[dict[str, str]] = []
    images = 0
    for m in body.get("messages", []):
        text, n = _content_text(m.get("content"))
        images += n
        item = {"role": str(m.get("role", "")), "content": text}
        if m.get("name"):
            item["name"] = str(m["name"])
        for call in m.get("tool_calls") or ():
            fn = call.get("function", {})
            item["content"] += str(fn.get("name", "")) + str(fn.get("arguments", ""))
        if m.get("tool_call_id"):
            item["tool_call_id"] = str(m["tool_call_id"])
        flat.append(item)
    total = count_chat_tokens(enc, flat) + images * IMAGE_TOKENS
    if body.get("tools"):
        total += len(enc.encode(json.dumps(body["tools"]), disallowed_special=()))
    return total


def openai_protocol_problems(body: dict[str, Any]) -> list[str]:
    """What OpenAI would refuse in this body (the checks it is known to make), as messages."""
    problems: list[str] = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model: required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "messages: must be a non-empty array"]
    for key in ("max_tokens", "max_completion_tokens"):
        if key in body and (not isinstance(body[key], int) or body[key] < 1):
            problems.append(f"{key}: must be a positive integer, got {body[key]!r}")
    for i, tool in enumerate(body.get("tools") or ()):
        fn = tool.get("function", {}) if isinstance(tool, dict) else {}
        if tool.get("type") != "function" or not _NAME.match(str(fn.get("name", ""))):
            problems.append(f"tools[{i}]: invalid function tool {tool!r}")
        if not isinstance(fn.get("parameters", {}), dict):
            problems.append(f"tools[{i}].function.parameters: must be an object")
    pending: list[str] = []
    pending_at = -1
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in _ROLES:
            problems.append(f"messages[{i}].role: invalid role {role!r}")
            continue
        if pending and role != "tool":
            problems.append(
                f"messages[{pending_at}]: an assistant message with 'tool_calls' must be followed by tool "
                f"messages responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}"
            )
            pending = []
        if role == "tool":
            call_id = m.get("tool_call_id")
            if call_id not in pending:
                problems.append(
                    f"messages[{i}]: messages with role 'tool' must be a response to a preceding message "
                    f"with 'tool_calls' (tool_call_id {call_id!r})"
                )
            else:
                pending.remove(call_id)
            if not isinstance(m.get("content"), str | list):
                problems.append(f"messages[{i}].content: required for a tool message")
            for j, part in enumerate(m["content"] if isinstance(m.get("content"), list) else ()):
                if part.get("type") != "text":
                    problems.append(
                        f"messages[{i}].content[{j}]: Image URLs are only allowed for messages with role 'user', "
                        "but this message with role 'tool' contains an image URL"
                    )
        elif role == "assistant":
            calls = m.get("tool_calls") or []
            if m.get("content") is None and not calls:
                problems.append(f"messages[{i}]: assistant content is required when there are no tool_calls")
            ids = []
            for j, call in enumerate(calls):
                fn = call.get("function", {})
                if call.get("type") != "function" or not isinstance(fn.get("arguments"), str):
                    problems.append(
                        f"messages[{i}].tool_calls[{j}]: needs type 'function' and string arguments"
                    )
                if not call.get("id"):
                    problems.append(f"messages[{i}].tool_calls[{j}].id: required")
                ids.append(call.get("id"))
            if len(set(ids)) != len(ids):
                problems.append(f"messages[{i}].tool_calls: duplicate ids {ids}")
            pending, pending_at = [str(x) for x in ids], i
        elif role == "user":
            content = m.get("content")
            if isinstance(content, list):
                for j, part in enumerate(content):
                    if part.get("type") not in ("text", "image_url"):
                        problems.append(f"messages[{i}].content[{j}]: unknown part type {part.get('type')!r}")
                    if part.get("type") == "image_url" and not str(part.get("image_url", {}).get("url", "")):
                        problems.append(f"messages[{i}].content[{j}].image_url.url: required")
            elif not isinstance(content, str):
                problems.append(f"messages[{i}].content: must be a string or an array of parts")
            if "name" in m and not _NAME.match(str(m["name"])):
                problems.append(f"messages[{i}].name: must match ^[a-zA-Z0-9_-]{{1,64}}$")
    if pending:
        problems.append(
            f"messages[{pending_at}]: an assistant message with 'tool_calls' must be followed by tool "
            f"messages responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(pending)}"
        )
    return problems


class FakeOpenAIServer(FakeModelServer):
    route = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def protocol_problems(self, body: dict[str, Any]) -> list[str]:
        return openai_protocol_problems(body)

    def invalid_request_body(self, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}

    def not_found_body(self, path: str) -> dict[str, Any]:
        return {
            "error": {
                "message": f"Invalid URL (POST {path})",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }

    def overflow_response(self, body: dict[str, Any]) -> web.Response | None:
        assert self.context_window is not None
        prompt = count_prompt_tokens(body)
        completion = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
        if prompt + completion <= self.context_window:
            return None
        fail = context_length_exceeded(self.context_window, prompt, completion)
        return self.fail_response(fail)

    # -- rendering -------------------------------------------------------------------------
    def _chunk(
        self,
        cid: str,
        model: str,
        delta: dict[str, Any] | None,
        finish: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> str:
        choices = (
            [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        )
        out: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if usage is not None:
            out["usage"] = usage
        return json.dumps(out)

    def _usage(self, recorded: RecordedRequest, step: Reply) -> dict[str, Any]:
        enc = encoding()
        prompt = step.input_tokens if step.input_tokens is not None else count_prompt_tokens(recorded.body)
        if step.output_tokens is not None:
            completion = step.output_tokens
        else:
            out = step.text + "".join(c.name + c.arguments for c in step.tool_calls)
            completion = len(enc.encode(out, disallowed_special=()))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": step.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    @staticmethod
    def _finish(step: Reply) -> str:
        if step.finish_reason is not None:
            return step.finish_reason
        return "tool_calls" if step.tool_calls else "stop"

    async def render(self, request: web.Request, recorded: RecordedRequest, step: Step) -> web.StreamResponse:
        model = getattr(step, "model", None) or recorded.body.get("model") or self.model
        cid = self.next_id("chatcmpl-fake-")
        if not recorded.stream:
            assert isinstance(step, Reply), f"{type(step).__name__} needs a streaming request"
            message: dict[str, Any] = {"role": "assistant", "content": step.text or None, "refusal": None}
            if step.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": c.id or self.next_id("call_fake_"),
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in step.tool_calls
                ]
            body: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish(step)}
                ],
            }
            if step.usage:
                body["usage"] = self._usage(recorded, step)
            return web.json_response(body)

        response = await self.start_sse(request)
        await self.sse(response, self._chunk(cid, model, {"role": "assistant", "content": ""}))
        if isinstance(step, Reply):
            for piece in split_text(step.text, step.chunks):
                await self.sse(response, self._chunk(cid, model, {"content": piece}))
                if step.chunk_delay_s:
                    await self.hang(step.chunk_delay_s)
            for index, call in enumerate(step.tool_calls):
                first = {
                    "index": index,
                    "id": call.id or self.next_id("call_fake_"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                await self.sse(response, self._chunk(cid, model, {"tool_calls": [first]}))
                for frag in split_text(call.arguments, 3):
                    await self.sse(
                        response,
                        self._chunk(
                            cid, model, {"tool_calls": [{"index": index, "function": {"arguments": frag}}]}
                        ),
                    )
            await self.sse(response, self._chunk(cid, model, {}, self._finish(step)))
            include_usage = bool((recorded.body.get("stream_options") or {}).get("include_usage"))
            if include_usage and step.usage:
                await self.sse(response, self._chunk(cid, model, None, usage=self._usage(recorded, step)))
            await self.sse(response, "[DONE]")
        elif isinstance(step, Truncated):
            for piece in split_text(step.text, step.chunks):
                await self.sse(response, self._chunk(cid, model, {"content": piece}))
            await self.sse(response, "[DONE]")
        elif isinstance(step, Disconnect | Hang | StreamError):
            pieces = split_text(step.text, max(step.after_chunks, 1))[: step.after_chunks]
            for piece in pieces:
                await self.sse(response, self._chunk(cid, model, {"content": piece}))
            if isinstance(step, Disconnect):
                self.drop(request)
                return response
            if isinstance(step, Hang):
                await self.hang(step.seconds)
                self.drop(request)
                return response
            error = {"message": step.message, "type": step.error_type, "param": None, "code": step.code}
            await self.sse(response, json.dumps({"error": error}))
        await response.write_eof()
        return response


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAIServer]:
    """A started FakeOpenAIServer (empty script: every request answers ``Reply(text="ok")``)."""
    async with FakeOpenAIServer() as server:
        yield server
