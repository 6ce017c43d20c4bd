"""Azure OpenAI specifics: deployment routing, api-version, the three ways to authenticate, its
error shapes, and its options as check-config reports them."""

from __future__ import annotations

from pathlib import Path

import pytest

from botframework.config import parse_config
from botframework.config.schema import ModelConfig
from botframework.errors import ConfigError, ContentFilterError, ModelNotFoundError
from botframework.messages import Message
from botframework.models.base import ModelRequest
from providers.azure.client import AzureOpenAIClient
from providers.azure.config import AzureOpenAIModelConfig
from tests.fakes import Reply
from tests.fakes.azure_server import FakeAzureServer
from tests.test_cli import run

REQUEST = ModelRequest(system="s", messages=[Message.user("hi")], max_tokens=50)


def config(fake: FakeAzureServer, **kw: object) -> ModelConfig:
    data: dict[str, object] = {"provider": "azure", "endpoint": fake.base_url, "deployment": "chat-prod"}
    data.update(kw)
    return ModelConfig.model_validate(data)


async def test_key_auth_deployment_url_and_api_version() -> None:
    async with FakeAzureServer() as fake:
        client = AzureOpenAIClient(name="az", config=config(fake, api_key="az-test-key", api_version="2025-01-01"))
        try:
            response = await client.complete(REQUEST)
        finally:
            await client.close()
    assert response.text == "ok"
    [sent] = fake.requests
    assert sent.path == "/openai/deployments/chat-prod/chat/completions"
    assert sent.headers["api-key"] == "az-test-key" and "authorization" not in sent.headers
    assert fake.auth_errors == []


async def test_entra_id_tokens_from_a_provider_and_a_fixed_token() -> None:
    calls: list[int] = []

    async def tokens() -> str:
        calls.append(1)
        return "entra-token"

    async with FakeAzureServer() as fake:
        cfg = config(fake, entra_id={"tenant_id": "t", "client_id": "c", "client_secret": "s"})
        client = AzureOpenAIClient(name="az", config=cfg, token_provider=tokens)
        fixed = AzureOpenAIClient(name="az", config=config(fake, ad_token="entra-token"))
        try:
            await client.complete(REQUEST)
            await client.complete(REQUEST)
            await fixed.complete(REQUEST)
        finally:
            await client.close()
            await fixed.close()
    assert len(calls) == 2, "asked before each request (the credential caches and refreshes)"
    assert [r.headers["authorization"] for r in fake.requests] == ["Bearer entra-token"] * 3
    assert all("api-key" not in r.headers for r in fake.requests)
    assert fake.auth_errors == []


async def test_an_unknown_deployment_and_a_filtered_answer() -> None:
    async with FakeAzureServer(deployment="other") as fake:
        client = AzureOpenAIClient(name="az", config=config(fake, api_key="az-test-key"))
        try:
            with pytest.raises(ModelNotFoundError, match="deployment for this resource does not exist"):
                await client.complete(REQUEST)
        finally:
            await client.close()
    async with FakeAzureServer() as fake:
        fake.push(Reply(text="", finish_reason="content_filter"))
        client = AzureOpenAIClient(name="az", config=config(fake, api_key="az-test-key"))
        try:
            with pytest.raises(ContentFilterError):
                await client.complete(REQUEST)
        finally:
            await client.close()


def test_options() -> None:
    cfg = ModelConfig.model_validate(
        {"provider": "azure", "endpoint": "https://r.openai.azure.com", "deployment": "gpt4o-prod", "api_key": "k"}
    )
    assert isinstance(cfg, AzureOpenAIModelConfig)
    assert cfg.model == "gpt4o-prod" and cfg.tiktoken_model() == "gpt4o-prod"
    named = cfg.model_copy(update={"model": "gpt-4o"})
    assert named.tiktoken_model() == "gpt-4o"

    def problems(model: str) -> list[str]:
        text = f"models:\n  az: {model}\ntenants:\n  acme:\n    agent: {{model: az}}\n"
        with pytest.raises(ConfigError) as info:
            parse_config(text, env={})
        return [str(p) for p in info.value.problems]

    base = "provider: azure, endpoint: 'https://r.openai.azure.com'"
    assert problems(f"{{{base}, deployment: d}}") == [
        "models.az: set exactly one of api_key, ad_token or entra_id (got none) (line 2)"
    ]
    assert problems(f"{{{base}, deployment: d, api_key: k, ad_token: t}}") == [
        "models.az: set exactly one of api_key, ad_token or entra_id (got api_key, ad_token) (line 2)"
    ]
    [secret] = problems(f"{{{base}, deployment: d, entra_id: {{client_secret: s}}}}")
    assert secret.startswith("models.az.entra_id: client_secret needs tenant_id and client_id")


def test_check_config_names_a_missing_deployment(tmp_path: Path) -> None:
    bad = tmp_path / "azure.yaml"
    bad.write_text(
        "models:\n  main:\n    provider: azure\n    endpoint: https://r.openai.azure.com\n    api_key: ${AZ_KEY}\n"
        "tenants:\n  acme:\n    agent: {model: main}\n",
        encoding="utf-8",
    )
    result = run("check-config", str(bad), env={"AZ_KEY": "k"})
    assert result.returncode == 1
    assert "models.main.deployment: field required (line 2)" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr + result.stdout
