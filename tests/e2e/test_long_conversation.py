"""300 turns against a model with a 4k window that rejects oversized requests: every turn answered."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from botframework.config.schema import Config
from botframework.runtime import Runtime
from botframework.turn import Origin
from tests.fakes import RecordedRequest, Reply, ToolCallSpec
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.slow

WINDOW = 4096
TURNS = 300


class CountingServer(FakeOpenAIServer):
    """Counts the oversized requests it rejected (with the real context_length_exceeded 400)."""

    rejected = 0

    def overflow_response(self, body: dict[str, Any]) -> web.Response | None:
        response = super().overflow_response(body)
        if response is not None:
            self.rejected += 1
        return response


def _answer(request: RecordedRequest) -> Reply:
    last = request.messages[-1]
    if last["role"] == "tool":
        return Reply(text=f"The clock says {last['content']}. " + "Noted. " * 20)
    text = str(last["content"])
    if "time" in text:
        return Reply(tool_calls=[ToolCallSpec(name="clock", arguments="{}")])
    return Reply(text="Understood: " + " ".join(text.split()[:60]) + " " + "and so on " * 15)


async def test_three_hundred_turns_in_a_4k_window_are_all_answered(db_url: str) -> None:
    async with CountingServer(default=_answer, context_window=WINDOW) as fake:
        config = Config.model_validate(
            {
                "storage": {"url": db_url},
                "models": {
                    "main": {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "base_url": fake.base_url,
                        "api_key": "sk-test",
                        "context_window": WINDOW,
                        "max_output_tokens": 1024,
                    }
                },
                "tenants": {
                    "acme": {
                        "agent": {
                            "model": "main",
                            "tools": ["clock"],
                            "system_prompt": "You are a careful assistant. " * 20,
                        }
                    }
                },
            }
        )
        runtime = Runtime(config=config, channels=False)
        await runtime.start()
        try:
            errors = []
            for n in range(TURNS):
                ask = (
                    "what time is it now?"
                    if n % 10 == 9
                    else f"turn {n}: " + " ".join(f"detail{(n * 7 + i) % 113}" for i in range(40 + n % 90))
                )
                reply = await runtime.ask(
                    tenant="acme", origin=Origin.background("soak"), conversation_key="long", text=ask
                )
                if reply.is_error:
                    errors.append((n, reply.error_kind, reply.text))
        finally:
            await runtime.stop()
    assert errors == []
    assert fake.protocol_errors == []
    assert fake.rejected == 0, f"{fake.rejected} requests exceeded the window"
    tool_rounds = sum(1 for r in fake.requests if r.messages[-1]["role"] == "tool")
    assert tool_rounds == TURNS // 10
    assert len(fake.requests) == TURNS + tool_rounds
    prompt_sizes = [len(r.raw) for r in fake.requests]
    assert max(prompt_sizes[-50:]) < 4 * max(prompt_sizes[:50]) + 20000, "prompt grew with the history"
