"""Every provider as the guarantee tests see it: its fake server, a config pointing at it, and how
that vendor says "429, retry after N seconds" and where a tool result sits in its request body.

Adding a provider means adding a :class:`ProviderCase` here; ``test_guarantees.py`` then runs the
shared checks (streamed answer, tool round, 429 with Retry-After, overflow that shrinks and
retries, dropped and truncated streams, refused credentials) against it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import FakeModelServer, Step
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.anthropic_server import rate_limited as anthropic_rate_limited
from tests.fakes.azure_server import FakeAzureServer, azure_rate_limited
from tests.fakes.bedrock_server import FakeBedrockServer, throttled
from tests.fakes.cohere_server import FakeCohereServer, too_many_requests
from tests.fakes.gemini_server import FakeGeminiServer, resource_exhausted
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.openai_server import rate_limited as openai_rate_limited

__all__ = ["CASES", "ProviderCase"]


@dataclass(frozen=True, kw_only=True)
class ProviderCase:
    name: str
    server: Callable[..., FakeModelServer]
    """``server(context_window=None)``: a fresh (unstarted) fake."""
    model: Callable[[FakeModelServer], dict[str, Any]]
    """``models.<name>`` for that fake (valid credentials)."""
    bad_credentials: dict[str, Any]
    """Overrides of ``model`` that the fake must refuse."""
    rate_limited: Callable[[float], Step]
    """The vendor's 429 with a Retry-After of so many seconds."""
    tool_results: Callable[[dict[str, Any]], list[str]]
    """The text of every tool result in a request body, in the vendor's format."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


def _openai_results(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def _gemini_results(body: dict[str, Any]) -> list[str]:
    return [
        json.dumps(p["functionResponse"]["response"])
        for c in body["contents"]
        for p in c["parts"]
        if "functionResponse" in p
    ]


def _anthropic_results(body: dict[str, Any]) -> list[str]:
    return [
        json.dumps(b["content"]) if not isinstance(b["content"], str) else b["content"]
        for m in body["messages"]
        for b in m["content"]
        if b["type"] == "tool_result"
    ]


CASES: list[ProviderCase] = [
    ProviderCase(
        name="openai",
        server=lambda **kw: FakeOpenAIServer(**kw),
        model=lambda fake: {"provider": "openai", "model": "gpt-4o-mini", "base_url": fake.base_url, "api_key": "sk"},
        bad_credentials={},
        rate_limited=lambda s: openai_rate_limited(retry_after=s),
        tool_results=_openai_results,
    ),
    ProviderCase(
        name="anthropic",
        server=lambda **kw: FakeAnthropicServer(**kw),
        model=lambda fake: {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "base_url": fake.base_url,
            "api_key": "sk-ant",
        },
        bad_credentials={},
        rate_limited=lambda s: anthropic_rate_limited(retry_after=s),
        tool_results=_anthropic_results,
    ),
    ProviderCase(
        name="azure",
        server=lambda **kw: FakeAzureServer(**kw),
        model=lambda fake: {
            "provider": "azure",
            "endpoint": fake.base_url,
            "deployment": "chat-prod",
            "model": "gpt-4o-mini",
            "api_key": "az-test-key",
        },
        bad_credentials={"api_key": "wrong-key"},
        rate_limited=azure_rate_limited,
        tool_results=_openai_results,
    ),
    ProviderCase(
        name="bedrock",
        server=lambda **kw: FakeBedrockServer(**kw),
        model=lambda fake: {
            "provider": "bedrock",
            "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "region": "us-east-1",
            "base_url": fake.base_url,
            "aws_access_key_id": "AKIDFAKEBEDROCK",
            "aws_secret_access_key": "fake-secret",
        },
        bad_credentials={"aws_secret_access_key": "not-the-secret"},
        rate_limited=throttled,
        tool_results=_anthropic_results,
    ),
    ProviderCase(
        name="gemini",
        server=lambda **kw: FakeGeminiServer(**kw),
        model=lambda fake: {
            "provider": "gemini",
            "model": "gemini-2.5-flash",
            "base_url": fake.base_url,
            "api_key": "gemini-test-key",
        },
        bad_credentials={"api_key": "wrong-key"},
        rate_limited=resource_exhausted,
        tool_results=_gemini_results,
    ),
    ProviderCase(
        name="cohere",
        server=lambda **kw: FakeCohereServer(**kw),
        model=lambda fake: {
            "provider": "cohere",
            "model": "command-a-03-2025",
            "base_url": fake.base_url,
            "api_key": "cohere-test-key",
        },
        bad_credentials={"api_key": "wrong-key"},
        rate_limited=too_many_requests,
        tool_results=_openai_results,
    ),
]
