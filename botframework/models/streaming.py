"""Pieces both SDK providers share: tool-call accumulation and turning what arrived into a response.

Accumulation is done here on the raw events rather than with the SDKs' stream helpers because the
arguments must reach the tool loop exactly as the model wrote them (the helpers parse them and
lose malformed JSON), and because a stream that ends without a finish reason must fail, which the
helpers do not check.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from botframework.errors import ContentFilterError, IncompleteStreamError
from botframework.messages import ToolCall, ToolSpec
from botframework.models.base import FinishReason, ModelResponse, Usage
from botframework.models.finish import normalize_finish_reason
from botframework.models.textcalls import TextCallFilter, TextCalls, merge_text_calls

__all__ = ["ToolCallAccumulator", "build_response", "new_call_id"]


def new_call_id() -> str:
    """For servers that send tool calls without an id."""
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass(slots=True)
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Collects streamed tool-call fragments keyed by the provider's index."""

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}
        self._last: int | None = None

    def __len__(self) -> int:
        return len(self._calls)

    def key_for(self, index: int | None, call_id: str | None) -> int:
        """The slot for a fragment; servers that omit ``index`` start a new call with each new id."""
        if index is not None:
            return index
        if self._last is None or (call_id and self._calls[self._last].id and self._calls[self._last].id != call_id):
            return len(self._calls)
        return self._last

    def add(
        self, key: int, *, call_id: str | None = None, name: str | None = None, arguments: str | None = None
    ) -> None:
        slot = self._calls.setdefault(key, _Partial())
        self._last = key
        if call_id and not slot.id:
            slot.id = call_id
        if name and name != slot.name:
            slot.name = name if not slot.name else slot.name + name
        if arguments:
            slot.arguments.append(arguments)

    def set_arguments_if_empty(self, key: int, arguments: str) -> None:
        slot = self._calls.setdefault(key, _Partial())
        if not slot.arguments:
            slot.arguments.append(arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=p.id or new_call_id(), name=p.name, arguments="".join(p.arguments) or "{}")
            for _, p in sorted(self._calls.items())
        )


async def build_response(
    *,
    model_name: str,
    raw_finish: str | None,
    text: str | TextCallFilter,
    native_calls: Sequence[ToolCall],
    tools: Sequence[ToolSpec],
    usage: Usage,
    provider_model: str,
    refusal: str | None = None,
) -> ModelResponse:
    """Check completeness, fold in tool calls written as text, normalize the finish reason.

    ``text`` is the streaming filter (which then releases what it withheld) or the full text.
    """
    finish = normalize_finish_reason(raw_finish)
    if finish is None:
        received = text.text if isinstance(text, TextCallFilter) else text
        raise IncompleteStreamError(
            f"the answer ended without a finish reason after {len(received)} characters of text "
            f"and {len(native_calls)} tool call(s)",
            model=model_name,
        )
    names = [t.name for t in tools]
    final: TextCalls
    if isinstance(text, TextCallFilter):
        if native_calls:
            done = await text.finish(parse=False)
            final = TextCalls(text=done.text, calls=tuple(native_calls))
        else:
            final = await text.finish(parse=finish != "content_filter")
    else:
        final = merge_text_calls(text, native_calls, names if finish != "content_filter" else ())
    reason: FinishReason = finish
    if final.calls and reason == "stop":
        reason = "tool_calls"
    elif not final.calls and reason == "tool_calls":
        reason = "stop"
    if reason == "content_filter" and not final.text and not final.calls:
        raise ContentFilterError(
            f"the provider's safety system stopped the answer{': ' + refusal if refusal else ''}",
            model=model_name,
        )
    return ModelResponse(
        text=final.text, tool_calls=final.calls, finish_reason=reason, usage=usage, model=provider_model
    )
