"""build_client: one client per provider, wired to the configured endpoint and headers."""

from __future__ import annotations

from botframework.models.registry import build_client
from providers.anthropic.client import AnthropicClient
from providers.offline.client import OfflineClient
from providers.openai.client import OpenAIClient
from tests.fakes.openai_server import FakeOpenAIServer
from tests.models.helpers import config, request


async def test_builds_each_provider() -> None:
    configs = {
        "a": config("openai", base_url="http://127.0.0.1:9/v1"),
        "b": config("anthropic", base_url="http://127.0.0.1:9"),
        "c": config("offline"),
    }
    clients = {name: build_client(name, cfg) for name, cfg in configs.items()}
    assert isinstance(clients["a"], OpenAIClient) and clients["a"].name == "a"
    assert isinstance(clients["b"], AnthropicClient)
    assert isinstance(clients["c"], OfflineClient)
    for c in clients.values():
        await c.close()


async def test_configured_endpoint_key_and_headers_are_used(fake_openai: FakeOpenAIServer) -> None:
    client = build_client(
        "main",
        config(
            base_url=fake_openai.base_url,
            model="qwen-max",
            api_key="sk-secret-1",
            headers={"X-Tenant": "acme"},
        ),
    )
    try:
        await client.complete(request())
    finally:
        await client.close()
    [sent] = fake_openai.requests
    assert sent.headers["authorization"] == "Bearer sk-secret-1"
    assert sent.headers["x-tenant"] == "acme"
    assert sent.body["model"] == "qwen-max"
    assert "sk-secret-1" not in repr(client.config)
