"""Bedrock specifics: the InvokeModel paths and body, SigV4 (and session tokens), Bedrock API keys,
errors inside the event stream, and its options as check-config reports them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from botframework.config.schema import ModelConfig
from botframework.errors import RateLimitedError, ServerError
from botframework.messages import Message
from botframework.models.base import ModelRequest
from providers.bedrock.client import BedrockClient
from providers.bedrock.config import BedrockModelConfig
from tests.fakes import Reply, StreamError
from tests.fakes.bedrock_server import FakeBedrockServer
from tests.test_cli import run

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
REQUEST = ModelRequest(system="Be brief.", messages=[Message.user("hi")], max_tokens=50)


def config(fake: FakeBedrockServer, **kw: Any) -> ModelConfig:
    data: dict[str, Any] = {
        "provider": "bedrock",
        "model": MODEL,
        "region": "eu-west-3",
        "base_url": fake.base_url,
        "aws_access_key_id": "AKIDFAKEBEDROCK",
        "aws_secret_access_key": "fake-secret",
        **kw,
    }
    return ModelConfig.model_validate({k: v for k, v in data.items() if v is not None})


async def sink(_: str) -> None:
    return None


async def test_invoke_paths_body_and_sigv4() -> None:
    async with FakeBedrockServer(region="eu-west-3") as fake:
        client = BedrockClient(name="br", config=config(fake, aws_session_token="session-tok"))
        try:
            streamed = await client.complete(REQUEST, on_text=sink)
            once = await client.complete(REQUEST)
        finally:
            await client.close()
    assert streamed.text == once.text == "ok"
    first, second = fake.requests
    assert first.path == f"/model/{MODEL}/invoke-with-response-stream" and second.path == f"/model/{MODEL}/invoke"
    assert first.body == {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    auth = first.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKEBEDROCK/") and "/eu-west-3/bedrock/aws4_request" in auth
    assert first.headers["x-amz-security-token"] == "session-tok"
    assert fake.auth_errors == [] and fake.protocol_errors == []


async def test_a_bedrock_api_key_instead_of_sigv4() -> None:
    async with FakeBedrockServer(api_key="bedrock-api-key") as fake:
        cfg = config(fake, aws_access_key_id=None, aws_secret_access_key=None, api_key="bedrock-api-key")
        client = BedrockClient(name="br", config=cfg)
        try:
            await client.complete(REQUEST)
        finally:
            await client.close()
    assert fake.requests[0].headers["authorization"] == "Bearer bedrock-api-key"


@pytest.mark.parametrize(
    ("event", "error"),
    [("throttlingException", RateLimitedError), ("modelStreamErrorException", ServerError)],
)
async def test_an_exception_inside_the_event_stream(event: str, error: type[Exception]) -> None:
    async with FakeBedrockServer(region="eu-west-3") as fake:
        fake.push(StreamError(error_type=event, message="Too many tokens, please wait before trying again."))
        client = BedrockClient(name="br", config=config(fake))
        try:
            with pytest.raises(error, match="please wait"):
                await client.complete(REQUEST, on_text=sink)
        finally:
            await client.close()


async def test_tool_use_round_trip_on_bedrock() -> None:
    from tests.fakes import ToolCallSpec

    async with FakeBedrockServer(region="eu-west-3") as fake:
        fake.push(Reply(tool_calls=[ToolCallSpec(name="clock", arguments='{"tz": "UTC"}', id="toolu_1")]))
        client = BedrockClient(name="br", config=config(fake))
        try:
            from botframework.messages import ToolSpec

            response = await client.complete(
                ModelRequest(
                    system="", messages=[Message.user("time?")], tools=[ToolSpec("clock", "t")], max_tokens=50
                ),
                on_text=sink,
            )
        finally:
            await client.close()
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [("toolu_1", "clock", '{"tz": "UTC"}')]
    assert fake.requests[0].body["tools"][0]["name"] == "clock"


def test_options() -> None:
    cfg = ModelConfig.model_validate({"provider": "bedrock", "model": MODEL, "region": "us-east-1"})
    assert isinstance(cfg, BedrockModelConfig) and cfg.tiktoken_model() is None
    for bad, message in [
        ({"aws_access_key_id": "a"}, "aws_access_key_id and aws_secret_access_key go together"),
        ({"api_key": "k", "aws_profile": "p"}, "either api_key"),
        ({"region": "Paris"}, "should match pattern"),
    ]:
        with pytest.raises(ValueError, match=message):
            ModelConfig.model_validate({"provider": "bedrock", "model": MODEL, "region": "us-east-1", **bad})


def test_check_config_names_a_missing_region(tmp_path: Path) -> None:
    bad = tmp_path / "bedrock.yaml"
    bad.write_text(
        f"models:\n  claude:\n    provider: bedrock\n    model: {MODEL}\n"
        "tenants:\n  acme:\n    agent: {model: claude}\n",
        encoding="utf-8",
    )
    result = run("check-config", str(bad))
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["models.claude.region: field required (line 2)"]
