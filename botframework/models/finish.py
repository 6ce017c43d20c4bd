"""Finish reasons of every provider, normalized to :data:`botframework.models.base.FinishReason`."""

from __future__ import annotations

from botframework.models.base import FinishReason

__all__ = ["normalize_finish_reason"]

_ALIASES: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "eos_token": "stop",
    "end": "stop",
    "complete": "stop",
    "pause_turn": "stop",
    "tool_calls": "tool_calls",
    "tool_call": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "model_length": "length",
    "model_context_window_exceeded": "length",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "image_safety": "content_filter",
}


def normalize_finish_reason(raw: str | None) -> FinishReason | None:
    """The neutral reason, or None when the provider gave none (the stream did not really finish).

    An unknown, non-empty reason still means the model finished, so it reads as ``stop``.
    """
    if raw is None or raw == "":
        return None
    return _ALIASES.get(raw.strip().lower(), "stop")
