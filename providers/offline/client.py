"""The ``offline`` provider: a deterministic stand-in so the example config runs anywhere.

No network and no language model. Every reply starts with ``[offline model]`` so nobody mistakes
it for a real answer. Behaviour, decided only by the request:

- The last message is a tool result: it answers with that result, e.g.
  ``[offline model] The clock tool says: 2026-11-05T10:00:00+00:00 (Thursday, UTC)`` (or says the
  tool failed, for an error result).
- The ``clock`` tool is offered and the latest user message asks for the time or date ("what time
  is it?", "current time", "what's the date", "几点", "时间"): it calls ``clock`` with ``{}``
  (finish reason ``tool_calls``); the turn loop runs the tool and calls again, which then answers
  with the result as above.
- Otherwise: ``[offline model] This is a stand-in reply; no language model is configured. You
  said: <the latest user text, cut at 200 characters>``.

The text is streamed in a few chunks (word boundaries) when ``on_text`` is given. Usage is
counted with tiktoken's offline cl100k_base using OpenAI's cookbook overheads, so budget and
ledger figures are plausible. A reply longer than ``max_tokens`` is cut there with finish reason
``length``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import tiktoken

from botframework.config.schema import ModelConfig
from botframework.messages import Message, ToolCall
from botframework.models.base import ModelClient, ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.tokens import encoding_async
from providers.offline.config import OfflineModelConfig
from providers.offline.wire import prompt_messages

__all__ = ["OFFLINE_LABEL", "OfflineClient", "PromptCounter", "asks_for_time"]

OFFLINE_LABEL = "[offline model]"

_ASKS_TIME = re.compile(
    r"\bwhat(?:'s| is)?\s+(?:the\s+)?(?:current\s+)?(?:time|date|day)\b|\btime\s+is\s+it\b"
    r"|\bcurrent\s+(?:time|date)\b|\bclock\b|\btime\s+now\b|几点|时间|日期",
    re.IGNORECASE,
)
_CHUNKS = 4
_STAND_IN = "This is a stand-in reply; no language model is configured."


def asks_for_time(text: str) -> bool:
    return bool(_ASKS_TIME.search(text))


def _latest_user_text(messages: tuple[Message, ...]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.text
    return ""


def _tool_name(messages: tuple[Message, ...], call_id: str | None) -> str:
    for message in reversed(messages):
        for call in message.tool_calls:
            if call.id == call_id:
                return call.name
    return "tool"


def _chunks(text: str, n: int) -> list[str]:
    words = re.findall(r"\S+\s*|\s+", text)
    if len(words) <= 1:
        return [text] if text else []
    size = max(1, -(-len(words) // n))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


class PromptCounter:
    """``count_chat_tokens`` with each distinct value's count remembered (bounded, least recently
    used out): a conversation's prompt repeats the previous one plus a message or two, so only the
    new text is encoded. The sum is the same, message by message."""

    def __init__(self, *, max_entries: int = 8192) -> None:
        self.max_entries = max_entries
        self._counts: OrderedDict[str, int] = OrderedDict()

    def _count(self, enc: tiktoken.Encoding, value: str) -> int:
        found = self._counts.get(value)
        if found is not None:
            self._counts.move_to_end(value)
            return found
        counted = len(enc.encode(value, disallowed_special=()))
        self._counts[value] = counted
        if len(self._counts) > self.max_entries:
            self._counts.popitem(last=False)
        return counted

    def count(self, enc: tiktoken.Encoding, messages: Sequence[Mapping[str, str]]) -> int:
        total = 3
        for message in messages:
            total += 3
            for key, value in message.items():
                total += self._count(enc, value) + (1 if key == "name" else 0)
        return total


class OfflineClient(ModelClient):
    config_model = OfflineModelConfig

    def __init__(self, *, name: str, config: ModelConfig) -> None:
        super().__init__(name=name, config=config)
        self.counter = PromptCounter()

    async def complete(self, request: ModelRequest, *, on_text: TextCallback | None = None) -> ModelResponse:
        enc = await encoding_async()
        messages = tuple(request.messages)
        prompt = prompt_messages(request)
        input_tokens = self.counter.count(enc, prompt)
        last = messages[-1] if messages else None
        offered = {t.name for t in request.tools}

        if last is not None and last.role == "tool":
            name = last.name or _tool_name(messages, last.tool_call_id)
            verb = "failed" if last.is_error else "says"
            text = f"{OFFLINE_LABEL} The {name} tool {verb}: {last.text}"
        elif "clock" in offered and last is not None and last.role == "user" and asks_for_time(last.text):
            digest = hashlib.sha256(repr(prompt).encode()).hexdigest()[:20]
            call = ToolCall(id=f"call_offline_{digest}", name="clock", arguments="{}")
            return ModelResponse(
                text="",
                tool_calls=(call,),
                finish_reason="tool_calls",
                model=self.config.model,
                usage=Usage(input_tokens=input_tokens, output_tokens=len(enc.encode(call.name + call.arguments))),
            )
        else:
            said = _latest_user_text(messages)
            quoted = said if len(said) <= 200 else said[:200] + "…"
            text = f"{OFFLINE_LABEL} {_STAND_IN} You said: {quoted}"

        tokens = enc.encode(text, disallowed_special=())
        finish: str = "stop"
        if len(tokens) > request.max_tokens:
            tokens = tokens[: request.max_tokens]
            text = enc.decode(tokens)
            finish = "length"
        if on_text is not None:
            for piece in _chunks(text, _CHUNKS):
                await on_text(piece)
                await asyncio.sleep(0)
        return ModelResponse(
            text=text,
            finish_reason="length" if finish == "length" else "stop",
            model=self.config.model,
            usage=Usage(input_tokens=input_tokens, output_tokens=len(tokens)),
        )
