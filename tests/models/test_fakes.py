"""The fake model servers themselves: scripting, default responders, recording, protocol checks."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from botframework.errors import BadRequestError
from botframework.messages import Message, ToolCall
from botframework.models.base import ModelRequest
from providers.anthropic.client import AnthropicClient
from providers.openai.client import OpenAIClient
from tests.fakes import Hang, RecordedRequest, Reply, Step
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.models.helpers import config, request


async def test_default_responder_sees_the_request_sync_and_async() -> None:
    def echo(req: RecordedRequest) -> Step:
        return Reply(text="echo: " + req.messages[-1]["content"])

    async def later(req: RecordedRequest) -> Step:
        await asyncio.sleep(0)
        return Reply(text=f"{len(req.messages)} messages")

    async with FakeOpenAIServer(default=echo) as server:
        client = OpenAIClient(name="m", config=config(base_url=server.base_url))
        assert (await client.complete(request("ping"))).text == "echo: ping"
        server.default = later
        server.push(Reply(text="scripted first"))
        assert (await client.complete(request("x"))).text == "scripted first"
        assert (await client.complete(request("x"))).text == "2 messages"
        await client.close()
        assert len(server.requests) == 3


async def test_unknown_route_is_404_and_recorded() -> None:
    async with FakeOpenAIServer() as server, aiohttp.ClientSession() as session:
        async with session.get(server.base_url + "/models") as resp:
            assert resp.status == 404
        assert server.requests[0].path == "/v1/models"


async def test_protocol_violation_gets_the_vendor_400() -> None:
    bad = ModelRequest(
        system="",
        max_tokens=10,
        messages=[
            Message.user("x"),
            Message.assistant(tool_calls=[ToolCall(id="c1", name="clock", arguments="{}")]),
            Message.user("no result for c1"),
        ],
    )
    async with FakeOpenAIServer() as o, FakeAnthropicServer() as a:
        oc = OpenAIClient(name="o", config=config(base_url=o.base_url))
        ac = AnthropicClient(name="a", config=config("anthropic", base_url=a.base_url))
        for client, server in ((oc, o), (ac, a)):
            try:
                await client.complete(bad)
                raise AssertionError("the fake accepted a broken tool protocol")
            except BadRequestError as exc:
                assert "c1" in str(exc)
            assert server.protocol_errors and "c1" in " ".join(server.protocol_errors[0])
            await client.close()


async def test_close_ends_a_hanging_request_promptly() -> None:
    server = await FakeAnthropicServer().start()
    server.push(Hang(seconds=60))
    client = AnthropicClient(name="a", config=config("anthropic", base_url=server.base_url, timeout_s=30))
    task = asyncio.create_task(client.complete(request()))
    await server.wait_for_requests(1)
    started = time.monotonic()
    await server.close()
    assert time.monotonic() - started < 5
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()
