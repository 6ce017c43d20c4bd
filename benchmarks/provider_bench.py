"""Framework CPU per model call through the OpenAI and Anthropic providers, before and after the
request body is built and serialized by the provider itself (issue 9, "provider requests without
the typed transform"). Prints one table.

For each provider, a short history (3 messages) and a long one (400 stored messages, ~9k tokens),
streamed as turns are: the CPU time this process spends per call, measured with
``time.process_time`` around the calls. The fake model servers run in a child process, so their
work is not counted; what is counted is the provider (body building, JSON, the SDK's HTTP request
and its parsing of the streamed answer) and the event loop.

- **before**: the SDK's typed path the providers used to take: a fresh body dict handed to
  ``chat.completions.create(**body)`` / ``messages.create(**body)``, which walks every message
  through the SDK's request transform. It exists only here, as a subclass overriding ``_send``.
- **after**: the providers as shipped: stored messages' wire forms from the per-client cache, the
  JSON body written once and posted as is.

Calls alternate before/after within each round, so both see the same machine load.

Usage: ``python benchmarks/provider_bench.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botframework.config.schema import ModelConfig
from botframework.messages import Message, ToolCall, ToolSpec
from botframework.models.base import ModelClient, ModelRequest
from botframework.models.tokens import count_chat_tokens, encoding
from providers.anthropic.client import AnthropicClient
from providers.anthropic.wire import messages_body
from providers.openai.client import OpenAIClient
from providers.openai.wire import chat_completions_body

TOOLS = [
    ToolSpec(
        name="clock",
        description="The current time in a time zone.",
        parameters={"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    ),
    ToolSpec(
        name="search",
        description="Search the web.",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
            "required": ["query"],
        },
    ),
]


class OpenAIBefore(OpenAIClient):
    """The old request path: the SDK's typed ``create`` with a freshly built body."""

    async def _send(self, request: ModelRequest, *, stream: bool) -> Any:
        body = chat_completions_body(request, model=self.config.model, stream=stream)
        return await self.sdk.chat.completions.create(**body)


class AnthropicBefore(AnthropicClient):
    async def _send(self, request: ModelRequest, *, stream: bool) -> Any:
        body = messages_body(request, model=self.config.model, stream=stream)
        return await self.sdk.messages.create(**body)


def history(pairs: int) -> list[Message]:
    """``pairs`` stored exchanges (every 10th with a tool round), ids set as the store sets them."""
    ids = itertools.count(1)
    out: list[Message] = []
    for i in range(pairs):
        words = " ".join(f"word{(i * 7 + j) % 101}" for j in range(8))
        out.append(Message.user(f"Question {i}: {words}?"))
        if i % 10 == 9:
            call = ToolCall(id=f"call_{i}", name="clock", arguments='{"timezone": "Europe/Paris"}')
            out.append(Message.assistant("", tool_calls=[call]))
            out.append(Message.tool_result(call.id, "10:00 CET", name="clock"))
        out.append(Message.assistant(f"Answer {i}: {words}."))
    for m in out:
        m.id = next(ids)
    return out


def prompt_tokens(request: ModelRequest) -> int:
    flat = [{"role": "system", "content": request.system}] + [
        {"role": m.role, "content": m.text + "".join(c.name + c.arguments for c in m.tool_calls)}
        for m in request.messages
    ]
    return count_chat_tokens(encoding(), flat)


def serve() -> None:  # pragma: no cover - runs in the child process
    from tests.fakes import Reply
    from tests.fakes.anthropic_server import FakeAnthropicServer
    from tests.fakes.openai_server import FakeOpenAIServer

    async def main() -> None:
        answer = Reply(text="Sure, here is a short answer for you.", chunks=8, input_tokens=9000, output_tokens=9)
        async with (
            FakeOpenAIServer(default=lambda _: answer, validate=False) as oai,
            FakeAnthropicServer(default=lambda _: answer, validate=False) as ant,
        ):
            print(json.dumps({"openai": oai.base_url, "anthropic": ant.base_url}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


async def _cpu_per_call(client: ModelClient, request: ModelRequest) -> float:
    async def sink(_: str) -> None:
        return None

    start = time.process_time()
    await client.complete(request, on_text=sink)
    return (time.process_time() - start) * 1000


async def bench(urls: dict[str, str], rounds: int) -> list[tuple[str, str, int, int, float, float]]:
    def config(provider: str) -> ModelConfig:
        model = "gpt-4o-mini" if provider == "openai" else "claude-sonnet-4-5"
        return ModelConfig.model_validate(
            {"provider": provider, "model": model, "base_url": urls[provider], "api_key": "bench", "timeout_s": 30}
        )

    pairs: dict[str, tuple[type[ModelClient], type[ModelClient]]] = {
        "openai": (OpenAIBefore, OpenAIClient),
        "anthropic": (AnthropicBefore, AnthropicClient),
    }
    long_history = history(182)
    shapes = {
        "short": ModelRequest(
            system="You are a helpful assistant.", messages=[*history(1), Message.user("hi")], max_tokens=512
        ),
        "long": ModelRequest(
            system="You are a helpful assistant. " * 8, messages=long_history, tools=TOOLS, max_tokens=1024
        ),
    }
    rows = []
    for provider, (before_cls, after_cls) in pairs.items():
        before = before_cls(name="b", config=config(provider))
        after = after_cls(name="a", config=config(provider))
        for shape, request in shapes.items():
            for _ in range(3):  # warm-up: connections, caches, lazy imports
                await _cpu_per_call(before, request)
                await _cpu_per_call(after, request)
            b: list[float] = []
            a: list[float] = []
            for _ in range(rounds if shape == "long" else rounds * 3):
                b.append(await _cpu_per_call(before, request))
                a.append(await _cpu_per_call(after, request))
            rows.append(
                (
                    provider,
                    shape,
                    len(request.messages),
                    prompt_tokens(request),
                    statistics.median(b),
                    statistics.median(a),
                )
            )
        await before.close()
        await after.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="calls per variant for the long history")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root
    )
    try:
        assert child.stdout is not None
        urls = json.loads(child.stdout.readline())
        rows = asyncio.run(bench(urls, args.rounds))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=10)
    print("framework CPU per streamed model call, ms (median); fake servers in another process")
    print(f"{'provider':<10} {'history':<8} {'messages':>8} {'tokens':>7} {'before':>8} {'after':>8} {'ratio':>6}")
    for provider, shape, n, tokens, b, a in rows:
        print(f"{provider:<10} {shape:<8} {n:>8} {tokens:>7} {b:>8.2f} {a:>8.2f} {b / a:>5.1f}x")


if __name__ == "__main__":
    main()
