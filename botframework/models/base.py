"""The contract between the invocation service and a model provider.

A provider takes a ``ModelRequest`` in the neutral message model, translates it to its own wire
shape, streams text through ``on_text`` and returns one ``ModelResponse``. Every failure is raised
as a :class:`botframework.errors.ModelError` subclass; nothing vendor-specific escapes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from botframework.config.schema import ModelConfig
from botframework.messages import Message, ToolCall, ToolSpec

__all__ = [
    "FinishReason",
    "ModelClient",
    "ModelRequest",
    "ModelResponse",
    "TextCallback",
    "Usage",
]

FinishReason = Literal["stop", "tool_calls", "length", "content_filter"]
TextCallback = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ModelRequest:
    """What is sent: already budgeted and normalized by the budget engine."""

    system: str
    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    max_tokens: int
    temperature: float | None = None
    estimated_prompt_tokens: int = 0
    """The budget engine's own count, compared with the provider's to calibrate."""


@dataclass(frozen=True, kw_only=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, kw_only=True)
class ModelResponse:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    """The model id the provider reports."""


class ModelClient(ABC):
    """One configured model endpoint. Instances are shared by all conversations.

    A provider is a plugin: a subclass registered under the entry-point group
    ``botframework.providers`` (the name is what ``models.*.provider`` says). ``config_model``
    validates its ``models.<name>`` section; the core builds it as ``Client(name=..., config=...)``.
    """

    config_model: ClassVar[type[ModelConfig]] = ModelConfig
    """The options this provider understands: :class:`ModelConfig` or a subclass adding its own."""

    def __init__(self, *, name: str, config: ModelConfig) -> None:
        self.name = name
        self.config = config

    @abstractmethod
    async def complete(self, request: ModelRequest, *, on_text: TextCallback | None = None) -> ModelResponse:
        """Run one model call (streaming when ``on_text`` is given). Raises ModelError subclasses."""

    async def close(self) -> None:
        """Release connections."""
        return None
