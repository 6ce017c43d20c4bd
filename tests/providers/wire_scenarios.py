"""Conversations whose wire bodies are recorded, to prove that how a body is built changes nothing.

Each scenario runs through a provider client against its fake server (the real SDK over HTTP) and
yields the JSON bodies the server received. ``tests/fixtures/providers/<provider>_bodies.json``
holds the bodies recorded from the SDK's own request path (typed ``create`` with the SDK's
transform); :mod:`tests.providers.test_wire_bodies` checks the current path sends the same.

Re-record (only when a wire change is intended)::

    python -m tests.providers.wire_scenarios
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from botframework.messages import ImagePart, Message, ToolCall, ToolSpec
from botframework.models.base import ModelClient, ModelRequest
from tests.fakes import FakeModelServer, Reply, ToolCallSpec

__all__ = ["FIXTURES", "SCENARIOS", "record_bodies"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "providers"

PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
CLOCK = ToolSpec(
    name="clock",
    description="The current time in a time zone.",
    parameters={
        "type": "object",
        "properties": {"timezone": {"type": "string", "description": "IANA name, e.g. Europe/Paris"}},
        "required": ["timezone"],
    },
)
NOTE = ToolSpec(name="note", description="Keep a note.", parameters={})

Run = Callable[[ModelRequest, bool], Awaitable[Any]]


async def _tool_round(run: Run, server: FakeModelServer, *, stream: bool, temperature: bool) -> None:
    """A user asks, the model calls two tools (one with malformed arguments), results come back."""
    server.push(
        Reply(
            text="Let me check.",
            tool_calls=[
                ToolCallSpec(name="clock", arguments='{"timezone": "Europe/Paris"}', id="call_a1"),
                ToolCallSpec(name="clock", arguments='{"timezone": ', id="call.b2"),
            ],
        ),
        Reply(text="It is 10:00 in Paris."),
    )
    history = [
        Message.user("hi", name="Zoë Smith"),
        Message.assistant("Hello! How can I help?"),
        Message.user("What time is it in Paris? Answer in français, s'il vous plaît."),
    ]
    first = ModelRequest(system="You are terse.", messages=history, tools=[CLOCK, NOTE], max_tokens=300)
    response = await run(first, stream)
    history.append(Message.assistant(response.text, tool_calls=response.tool_calls))
    history.append(Message.tool_result(response.tool_calls[0].id, "10:00 (Thursday, CET)", name="clock"))
    history.append(
        Message.tool_result(response.tool_calls[1].id, "invalid arguments: not JSON", name="clock", is_error=True)
    )
    second = ModelRequest(
        system="You are terse.",
        messages=history,
        tools=[CLOCK, NOTE],
        max_tokens=300,
        temperature=1.3 if temperature else None,
    )
    await run(second, stream)


async def _images(run: Run, server: FakeModelServer, *, stream: bool, temperature: bool) -> None:
    """Images by https and data URL, with detail, an empty text part, and a tool result with an image."""
    server.push(Reply(text="A cat and a dot."), Reply(text="Done."))
    history = [
        Message.user(
            "What is in these pictures?",
            images=[
                ImagePart(url="https://img.test/cat.jpg", media_type="image/jpeg"),
                ImagePart(url=PNG, detail="low"),
            ],
        ),
    ]
    await run(ModelRequest(system="", messages=history, max_tokens=100), stream)
    history += [
        Message.assistant("A cat and a dot."),
        Message(role="user", content=(ImagePart(url=PNG, detail="high"),)),
    ]
    await run(
        ModelRequest(system="Describe.", messages=history, max_tokens=100, temperature=0.0 if temperature else None),
        stream,
    )


async def _shape(run: Run, server: FakeModelServer, *, stream: bool, temperature: bool) -> None:
    """History the Anthropic shape rewrites: a leading assistant message, consecutive same roles,
    a mid-history system summary, a tool result with an image and trailing assistant whitespace."""
    server.push(Reply(text="ok"))
    history = [
        Message.assistant("(continuing) "),
        Message(role="system", content=(Message.user("Summary: they talked about cats.").content)),
        Message.user("first"),
        Message.user("second"),
        Message.assistant(
            "", tool_calls=[ToolCall(id="toolu 01/x", name="clock", arguments='["not", "an", "object"]')]
        ),
        Message(
            role="tool",
            content=(*Message.user("a chart").content, ImagePart(url=PNG)),
            tool_call_id="toolu 01/x",
            name="clock",
        ),
        Message.user("thanks"),
        Message.assistant("Sure.   "),
    ]
    await run(ModelRequest(system="Be kind.", messages=history, tools=[CLOCK], max_tokens=64), stream)


SCENARIOS: dict[str, Callable[..., Awaitable[None]]] = {
    "tool_round": _tool_round,
    "images": _images,
    "shape": _shape,
}


async def record_bodies(
    client: ModelClient,
    server: FakeModelServer,
    *,
    temperature: bool = True,
    scenarios: dict[str, Callable[..., Awaitable[None]]] = SCENARIOS,
) -> dict[str, list[Any]]:
    """``{"<scenario>/<stream|once>": [body, ...]}``: what ``server`` received for each scenario.

    ``temperature=False`` leaves it out of the requests (the Anthropic SDK takes none)."""

    async def sink(_: str) -> None:
        return None

    async def run(request: ModelRequest, stream: bool) -> Any:
        for message in request.messages:  # as if stored: the providers cache wire forms by id
            if message.id is None:
                message.id = next(ids)
        return await client.complete(request, on_text=sink if stream else None)

    ids = itertools.count(1)
    out: dict[str, list[Any]] = {}
    for name, scenario in scenarios.items():
        for stream in (True, False):
            before = len(server.requests)
            await scenario(run, server, stream=stream, temperature=temperature)
            out[f"{name}/{'stream' if stream else 'once'}"] = [r.body for r in server.requests[before:]]
    return out


def _dump(path: Path, bodies: dict[str, list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bodies, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


async def _record() -> None:  # pragma: no cover - a maintenance script
    from tests.fakes.anthropic_server import FakeAnthropicServer
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.providers.clients import anthropic_client, openai_client

    async with FakeOpenAIServer() as server:
        client = openai_client(server.base_url)
        _dump(FIXTURES / "openai_bodies.json", await record_bodies(client, server))
        await client.close()
    async with FakeAnthropicServer() as server:
        client = anthropic_client(server.base_url)
        _dump(FIXTURES / "anthropic_bodies.json", await record_bodies(client, server, temperature=False))
        await client.close()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_record())
    print(f"recorded into {FIXTURES}", file=sys.stderr)
