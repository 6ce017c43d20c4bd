"""A fake Anthropic Messages API: ``POST /v1/messages``, streaming and not.

See :mod:`tests.fakes` for the step vocabulary. Specific to this server:

- ``base_url`` is the root ``http://127.0.0.1:<port>`` (``AsyncAnthropic`` appends ``/v1/messages``).
- Streams follow Anthropic's documented event flow: ``message_start``, ``ping``, per content block
  ``content_block_start`` / ``content_block_delta`` (``text_delta`` or ``input_json_delta``) /
  ``content_block_stop``, then ``message_delta`` (``stop_reason``, output usage) and
  ``message_stop``. ``Truncated`` stops before ``message_delta``; ``StreamError`` sends an
  ``event: error`` frame (e.g. ``overloaded_error``) inside the 200 stream.
- Usage: ``input_tokens`` excludes cache reads, which go in ``cache_read_input_tokens``
  (``Reply.cached_tokens``), as the real API reports them.
- ``context_window``: the prompt (system, message text, tool inputs and results, tool schemas as
  JSON, 3 tokens per message) is counted with cl100k_base; over the window it answers the real
  ``prompt is too long: N tokens > M maximum`` 400, and when only prompt + ``max_tokens`` is over,
  ``input length and `max_tokens` exceed context limit: a + b > c, ...``.
- Helpers build the real error bodies: :func:`anthropic_error`, :func:`overloaded`,
  :func:`rate_limited`, :func:`prompt_too_long`, :func:`credit_balance_too_low`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
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

__all__ = [
    "FakeAnthropicServer",
    "anthropic_error",
    "anthropic_protocol_problems",
    "count_prompt_tokens",
    "credit_balance_too_low",
    "fake_anthropic",
    "overloaded",
    "prompt_too_long",
    "rate_limited",
]

_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_BLOCKS = {"text", "image", "tool_use", "tool_result", "document", "thinking", "redacted_thinking"}


def anthropic_error(
    status: int, error_type: str, message: str, *, headers: dict[str, str] | None = None
) -> Fail:
    """An error in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    return Fail(
        status=status,
        headers=headers or {},
        body={"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_fake"},
    )


def overloaded() -> Fail:
    return anthropic_error(529, "overloaded_error", "Overloaded")


def rate_limited(retry_after: float | None = 1) -> Fail:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return anthropic_error(
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute.",
        headers=headers,
    )


def prompt_too_long(tokens: int = 208310, maximum: int = 200000) -> Fail:
    return anthropic_error(
        400, "invalid_request_error", f"prompt is too long: {tokens} tokens > {maximum} maximum"
    )


def credit_balance_too_low() -> Fail:
    return anthropic_error(
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
    )


def _block_text(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        return str(block.get("name", "")) + json.dumps(block.get("input", {}))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, str):
            return content
        return "".join(_block_text(b) for b in content if isinstance(b, dict))
    return ""


def count_prompt_tokens(body: dict[str, Any]) -> int:
    """The fake's prompt count for a Messages body (see the module docstring)."""
    enc = encoding()
    system = body.get("system") or ""
    if isinstance(system, list):
        system = "".join(str(b.get("text", "")) for b in system)
    texts = [system]
    total = 0
    for m in body.get("messages", []):
        total += 3
        content = m.get("content")
        texts.append(content if isinstance(content, str) else "".join(_block_text(b) for b in content or ()))
    if body.get("tools"):
        texts.append(json.dumps(body["tools"]))
    return total + sum(len(enc.encode(t, disallowed_special=())) for t in texts)


def anthropic_protocol_problems(body: dict[str, Any]) -> list[str]:
    """What the Messages API would refuse in this body (the checks it is known to make), as messages."""
    problems: list[str] = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model: Field required")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        problems.append(f"max_tokens: must be a positive integer, got {body.get('max_tokens')!r}")
    temperature = body.get("temperature")
    if temperature is not None and not (0 <= temperature <= 1):
        problems.append(f"temperature: must be between 0 and 1, got {temperature}")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        problems.append("system: must be a string or a list of text blocks")
    for i, tool in enumerate(body.get("tools") or ()):
        if not _NAME.match(str(tool.get("name", ""))):
            problems.append(f"tools.{i}.name: invalid {tool.get('name')!r}")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            problems.append(f"tools.{i}.input_schema: must be an object schema with type 'object'")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "messages: at least one message is required"]
    if messages[0].get("role") != "user":
        problems.append('messages: first message must use the "user" role')
    previous_tool_ids: list[str] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("user", "assistant"):
            problems.append(f"messages.{i}.role: Input should be 'user' or 'assistant', got {role!r}")
            continue
        if i > 0 and messages[i - 1].get("role") == role:
            problems.append(f'messages: roles must alternate between "user" and "assistant" (messages.{i})')
        content = m.get("content")
        blocks: list[dict[str, Any]]
        if isinstance(content, str):
            if not content and not (role == "assistant" and i == len(messages) - 1):
                problems.append(f"messages.{i}: content must be non-empty")
            blocks = [{"type": "text", "text": content}] if content else []
        elif isinstance(content, list):
            if not content:
                problems.append(f"messages.{i}: all messages must have non-empty content")
            blocks = content
        else:
            problems.append(f"messages.{i}.content: must be a string or a list of blocks")
            blocks = []
        tool_use_ids: list[str] = []
        seen_other = False
        answered: list[str] = []
        for j, block in enumerate(blocks):
            kind = block.get("type")
            where = f"messages.{i}.content.{j}"
            if kind not in _BLOCKS:
                problems.append(f"{where}.type: unknown block type {kind!r}")
                continue
            if kind == "text" and not block.get("text"):
                problems.append(f"{where}: text content blocks must be non-empty")
            if kind == "tool_use":
                if role != "assistant":
                    problems.append(f"{where}: tool_use blocks are only allowed in assistant messages")
                if not _ID.match(str(block.get("id", ""))):
                    problems.append(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
                if not isinstance(block.get("input"), dict):
                    problems.append(f"{where}.input: Input should be a valid dictionary")
                tool_use_ids.append(str(block.get("id")))
            if kind == "tool_result":
                if role != "user":
                    problems.append(f"{where}: tool_result blocks are only allowed in user messages")
                if seen_other:
                    problems.append(
                        f"{where}: tool_result blocks must come first in the user message content"
                    )
                tid = str(block.get("tool_use_id", ""))
                if tid not in previous_tool_ids:
                    problems.append(
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {tid}. Each "
                        "`tool_result` block must have a corresponding `tool_use` block in the previous "
                        "message."
                    )
                answered.append(tid)
            elif kind != "tool_result":
                seen_other = True
        if role == "user" and previous_tool_ids:
            missing = [t for t in previous_tool_ids if t not in answered]
            if missing:
                problems.append(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message."
                )
        last = i == len(messages) - 1
        if role == "assistant" and last and blocks and blocks[-1].get("type") == "text":
            text = str(blocks[-1].get("text", ""))
            if text != text.rstrip():
                problems.append("messages: final assistant content cannot end with trailing whitespace")
        if len(set(tool_use_ids)) != len(tool_use_ids):
            problems.append(f"messages.{i}: tool_use ids must be unique")
        previous_tool_ids = tool_use_ids if role == "assistant" else []
    if previous_tool_ids:
        problems.append(
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(previous_tool_ids)}"
        )
    return problems


class FakeAnthropicServer(FakeModelServer):
    route = "/v1/messages"

    @property
    def base_url(self) -> str:
        return self.origin

    def protocol_problems(self, body: dict[str, Any]) -> list[str]:
        return anthropic_protocol_problems(body)

    def invalid_request_body(self, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}

    def not_found_body(self, path: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": "not_found_error", "message": f"Not found: {path}"}}

    def overflow_response(self, body: dict[str, Any]) -> web.Response | None:
        assert self.context_window is not None
        prompt = count_prompt_tokens(body)
        max_tokens = int(body.get("max_tokens") or 0)
        if prompt > self.context_window:
            return self.fail_response(prompt_too_long(prompt, self.context_window))
        if prompt + max_tokens > self.context_window:
            return self.fail_response(
                anthropic_error(
                    400,
                    "invalid_request_error",
                    f"input length and `max_tokens` exceed context limit: {prompt} + {max_tokens} > "
                    f"{self.context_window}, decrease input length or `max_tokens` and try again",
                )
            )
        return None

    # -- rendering -------------------------------------------------------------------------
    def _usage(self, recorded: RecordedRequest, step: Reply) -> tuple[int, int]:
        prompt = step.input_tokens if step.input_tokens is not None else count_prompt_tokens(recorded.body)
        if step.output_tokens is not None:
            return prompt, step.output_tokens
        out = step.text + "".join(c.name + c.arguments for c in step.tool_calls)
        return prompt, len(encoding().encode(out, disallowed_special=()))

    @staticmethod
    def _stop_reason(step: Reply) -> str:
        if step.finish_reason is not None:
            return step.finish_reason
        return "tool_use" if step.tool_calls else "end_turn"

    def _message(
        self,
        mid: str,
        model: str,
        content: list[dict[str, Any]],
        stop: str | None,
        input_tokens: int,
        output_tokens: int,
        cached: int,
    ) -> dict[str, Any]:
        return {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens - cached,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": cached,
            },
        }

    async def _event(self, response: web.StreamResponse, data: dict[str, Any]) -> None:
        await self.sse(response, json.dumps(data), event=data["type"])

    async def _text_block(
        self,
        response: web.StreamResponse,
        index: int,
        pieces: list[str],
        *,
        close: bool = True,
        delay: float = 0.0,
    ) -> None:
        await self._event(
            response,
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        )
        for piece in pieces:
            await self._event(
                response,
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
            if delay:
                await self.hang(delay)
        if close:
            await self._event(response, {"type": "content_block_stop", "index": index})

    async def render(self, request: web.Request, recorded: RecordedRequest, step: Step) -> web.StreamResponse:
        model = getattr(step, "model", None) or recorded.body.get("model") or self.model
        mid = self.next_id("msg_fake_")
        if not self.is_stream(recorded):
            assert isinstance(step, Reply), f"{type(step).__name__} needs a streaming request"
            content: list[dict[str, Any]] = [{"type": "text", "text": step.text}] if step.text else []
            for call in step.tool_calls:
                try:
                    args = json.loads(call.arguments)
                except ValueError:
                    args = {}
                content.append(
                    {
                        "type": "tool_use",
                        "id": call.id or self.next_id("toolu_fake_"),
                        "name": call.name,
                        "input": args,
                    }
                )
            prompt, output = self._usage(recorded, step)
            return web.json_response(
                self._message(
                    mid, model, content, self._stop_reason(step), prompt, output, step.cached_tokens
                )
            )

        response = await self.start_sse(request)
        cached = step.cached_tokens if isinstance(step, Reply) else 0
        prompt, output = (
            self._usage(recorded, step)
            if isinstance(step, Reply)
            else (count_prompt_tokens(recorded.body), 0)
        )
        await self._event(
            response,
            {"type": "message_start", "message": self._message(mid, model, [], None, prompt, 1, cached)},
        )
        await self._event(response, {"type": "ping"})
        if isinstance(step, Reply):
            index = 0
            if step.text:
                await self._text_block(
                    response, index, split_text(step.text, step.chunks), delay=step.chunk_delay_s
                )
                index += 1
            for call in step.tool_calls:
                await self._event(
                    response,
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": call.id or self.next_id("toolu_fake_"),
                            "name": call.name,
                            "input": {},
                        },
                    },
                )
                for frag in split_text(call.arguments, 3):
                    await self._event(
                        response,
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": frag},
                        },
                    )
                await self._event(response, {"type": "content_block_stop", "index": index})
                index += 1
            await self._event(
                response,
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason(step), "stop_sequence": None},
                    "usage": {"output_tokens": output},
                },
            )
            await self._event(response, {"type": "message_stop"})
        elif isinstance(step, Truncated):
            await self._text_block(response, 0, split_text(step.text, step.chunks))
        elif isinstance(step, Disconnect | Hang | StreamError):
            pieces = split_text(step.text, max(step.after_chunks, 1))[: step.after_chunks]
            await self._text_block(response, 0, pieces, close=False)
            if isinstance(step, Disconnect):
                self.drop(request)
                return response
            if isinstance(step, Hang):
                await self.hang(step.seconds)
                self.drop(request)
                return response
            await self.sse(
                response,
                json.dumps({"type": "error", "error": {"type": step.error_type, "message": step.message}}),
                event="error",
            )
        await response.write_eof()
        return response


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropicServer]:
    """A started FakeAnthropicServer (empty script: every request answers ``Reply(text="ok")``)."""
    async with FakeAnthropicServer() as server:
        yield server
