"""A mixed fallback chain: an Azure OpenAI deployment first, Claude on Bedrock behind it. Both are
real SDKs over HTTP against their fakes; when Azure fails the turn is answered by Bedrock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from botframework.config.schema import Config
from botframework.runtime import Runtime
from botframework.turn import Origin
from storage.tables import MODEL_CALLS
from tests.fakes import Disconnect, RecordedRequest, Reply, Step
from tests.fakes.azure_server import FakeAzureServer, azure_rate_limited
from tests.fakes.bedrock_server import FakeBedrockServer
from tests.fakes.openai_server import server_error


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeAzureServer, FakeBedrockServer]]:
    async with FakeAzureServer() as azure, FakeBedrockServer() as bedrock:
        yield azure, bedrock


async def _runtime(db_url: str, azure: FakeAzureServer, bedrock: FakeBedrockServer) -> Runtime:
    config = Config.model_validate(
        {
            "storage": {"url": db_url},
            "models": {
                "azure-gpt": {
                    "provider": "azure",
                    "endpoint": azure.base_url,
                    "deployment": "chat-prod",
                    "model": "gpt-4o-mini",
                    "api_key": "az-test-key",
                },
                "bedrock-claude": {
                    "provider": "bedrock",
                    "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                    "region": "us-east-1",
                    "base_url": bedrock.base_url,
                    "aws_access_key_id": "AKIDFAKEBEDROCK",
                    "aws_secret_access_key": "fake-secret",
                },
            },
            "tenants": {"acme": {"agent": {"model": "azure-gpt", "fallback_models": ["bedrock-claude"]}}},
        }
    )
    runtime = Runtime(config=config, channels=False, sleep=_no_sleep)
    await runtime.start()
    return runtime


@pytest.mark.parametrize(
    ("failure", "azure_calls"),
    [
        (lambda: server_error(503), 3),  # retried twice, then the fallback
        (lambda: azure_rate_limited(retry_after=60), 1),  # a long Retry-After: straight to the fallback
        (lambda: Disconnect(after_chunks=1), 3),  # the stream drops mid-answer
    ],
    ids=["503", "429-long-retry-after", "dropped-stream"],
)
async def test_azure_fails_and_bedrock_answers(
    db_url: str, servers: tuple[FakeAzureServer, FakeBedrockServer], failure: Any, azure_calls: int
) -> None:
    azure, bedrock = servers

    def always_fail(_: RecordedRequest) -> Step:
        return failure()  # type: ignore[no-any-return]

    azure.default = always_fail
    bedrock.push(Reply(text="Answered by Claude on Bedrock."))
    runtime = await _runtime(db_url, azure, bedrock)
    try:
        deltas: list[str] = []

        class Sink:
            async def delta(self, text: str) -> None:
                deltas.append(text)

            async def reset(self) -> None:
                deltas.clear()

        reply = await runtime.ask(
            tenant="acme", origin=Origin.background("test"), conversation_key="k", text="hello", sink=Sink()
        )
        async with runtime.db.read() as conn:
            rows = [(r.model, r.outcome) for r in (await conn.execute(MODEL_CALLS.select())).all()]
    finally:
        await runtime.stop()
    assert not reply.is_error and reply.text == "Answered by Claude on Bedrock."
    assert reply.model == "bedrock-claude"
    assert "".join(deltas) == reply.text, "what streamed before the failure was taken back"
    assert len(azure.requests) == azure_calls and len(bedrock.requests) == 1
    assert rows[-1] == ("bedrock-claude", "ok") and all(m == "azure-gpt" for m, _ in rows[:-1])
    assert azure.auth_errors == [] and bedrock.auth_errors == [] and bedrock.protocol_errors == []
    assert bedrock.requests[0].body["messages"][-1]["content"] == [{"type": "text", "text": "hello"}]
