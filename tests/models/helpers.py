"""Test helpers for the model layer: configs, a scripted in-memory client, a recording observer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botframework.config.schema import ModelConfig
from botframework.errors import ModelError
from botframework.messages import Message
from botframework.models.base import ModelClient, ModelRequest, ModelResponse, TextCallback, Usage
from botframework.models.router import AttemptRecord, BaseRouterObserver


def config(
    provider: str = "openai", *, base_url: str | None = None, model: str = "m", **kw: Any
) -> ModelConfig:
    data: dict[str, Any] = {"provider": provider, "model": model, **kw}
    if provider != "offline":
        data.setdefault("api_key", "sk-test-key")
    if base_url is not None:
        data["base_url"] = base_url
    return ModelConfig.model_validate(data)


def request(text: str = "hello", **kw: Any) -> ModelRequest:
    kw.setdefault("max_tokens", 200)
    kw.setdefault("system", "You are terse.")
    return ModelRequest(messages=[Message.user(text)], **kw)


@dataclass
class Streamed:
    """A scripted step: stream ``chunks`` through on_text, then raise ``then`` or return it."""

    chunks: Sequence[str]
    then: ModelError | ModelResponse


@dataclass
class Hangs:
    seconds: float = 3600.0


Script = ModelError | ModelResponse | Streamed | Hangs


class ScriptedClient(ModelClient):
    """An in-memory ModelClient playing a script; records every request it gets."""

    def __init__(self, name: str, script: Sequence[Script] = (), **cfg: Any) -> None:
        super().__init__(name=name, config=config("offline", model=f"{name}-id", **cfg))
        self.script = list(script)
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest, *, on_text: TextCallback | None = None) -> ModelResponse:
        self.requests.append(request)
        step: Script = self.script.pop(0) if self.script else ok(f"{self.name} says ok")
        if isinstance(step, Hangs):
            await asyncio.sleep(step.seconds)
            raise AssertionError("unreachable")
        if isinstance(step, Streamed):
            for chunk in step.chunks:
                if on_text is not None:
                    await on_text(chunk)
            step = step.then
        if isinstance(step, ModelError):
            raise step
        if on_text is not None and step.text:
            await on_text(step.text)
        return step


def ok(text: str = "ok", **kw: Any) -> ModelResponse:
    kw.setdefault("usage", Usage(input_tokens=10, output_tokens=2))
    return ModelResponse(text=text, **kw)


@dataclass
class RecordingObserver(BaseRouterObserver):
    events: list[tuple[Any, ...]] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)

    async def on_attempt(self, record: AttemptRecord) -> None:
        self.attempts.append(record)
        self.events.append(("attempt", record.model_name, record.attempt, record.outcome))

    async def on_retry(self, *, model_name: str, attempt: int, error: ModelError, delay_s: float) -> None:
        self.events.append(("retry", model_name, attempt, error.kind.value, delay_s))

    async def on_fallback(self, *, from_model: str, to_model: str, error: ModelError) -> None:
        self.events.append(("fallback", from_model, to_model, error.kind.value))

    async def on_reset(self) -> None:
        self.events.append(("reset",))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """An injected sleep that records delays and returns at once, moving ``clock`` on if given."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.clock is not None:
            self.clock.now += seconds
        await asyncio.sleep(0)
