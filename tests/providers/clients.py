"""Provider clients pointed at a fake server, as the wire-body scenarios use them."""

from __future__ import annotations

from providers.anthropic.client import AnthropicClient
from providers.openai.client import OpenAIClient
from tests.models.helpers import config

__all__ = ["anthropic_client", "openai_client"]


def openai_client(base_url: str, *, model: str = "gpt-4o-mini") -> OpenAIClient:
    return OpenAIClient(name="main", config=config("openai", base_url=base_url, model=model, timeout_s=10))


def anthropic_client(base_url: str, *, model: str = "claude-sonnet-4-5") -> AnthropicClient:
    return AnthropicClient(name="claude", config=config("anthropic", base_url=base_url, model=model, timeout_s=10))
