"""Turns whose model calls MCP tools: real servers, the real SDKs, a scripted model over HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from botframework.events import EventKind, TurnEvent
from botframework.hooks import Deny, ToolDecision, TurnHooks
from botframework.messages import ToolCall
from botframework.tools.base import ToolContext
from botframework.turn import Origin
from tests.fakes import Reply, ToolCallSpec
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.mcp_server import PNG_1X1, McpHttpServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.tools.mcp.conftest import TIME_SERVER, RuntimeFactory, openai_model

BG = Origin.background("test")


def offered(request_body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["function"]["name"]: t["function"] for t in request_body.get("tools", [])}


class DenyTickets(TurnHooks):
    async def approve_tool(self, ctx: ToolContext, call: ToolCall) -> ToolDecision:
        if call.name == "lookup_ticket":
            return Deny("ticket lookups need a human's approval")
        return await super().approve_tool(ctx, call)


@pytest.mark.slow
async def test_stdio_time_server_tool_is_offered_called_and_answered(runtime_factory: RuntimeFactory) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(
            Reply(tool_calls=[ToolCallSpec(name="get_current_time", arguments='{"timezone": "Asia/Tokyo"}')]),
            Reply(text="It is evening in Tokyo."),
        )
        rt = await runtime_factory(
            models={"main": openai_model(fake)}, mcp_servers={"time": TIME_SERVER}, tools=["clock", "mcp:time"]
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="time in Tokyo?")
        first, second = fake.requests[0].body, fake.requests[1].body
    assert reply.text == "It is evening in Tokyo." and not reply.is_error
    tools = offered(first)
    assert set(tools) == {"clock", "get_current_time", "convert_time"}
    schema = tools["get_current_time"]["parameters"]
    assert schema["required"] == ["timezone"] and schema["properties"]["timezone"]["type"] == "string"
    assert tools["get_current_time"]["description"] == "Get current time in a specific timezone"
    result = second["messages"][-1]
    assert result["role"] == "tool"
    answer = json.loads(result["content"])  # the server's own JSON
    assert answer["timezone"] == "Asia/Tokyo" and answer["datetime"].endswith("+09:00")
    assert fake.protocol_errors == []


async def test_http_server_tool_result_reaches_the_model_with_the_configured_headers(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory
) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(
            Reply(tool_calls=[ToolCallSpec(name="lookup_ticket", arguments='{"ticket_id": "T-42"}')]),
            Reply(text="Ticket T-42 is open."),
        )
        rt = await runtime_factory(
            models={"main": openai_model(fake)},
            mcp_servers={"tickets": {"url": tickets.url, "headers": {"Authorization": "Bearer tickets-secret"}}},
            tools=["mcp:tickets/lookup_ticket"],
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="T-42?")
        first, second = fake.requests[0].body, fake.requests[1].body
    assert reply.text == "Ticket T-42 is open."
    assert list(offered(first)) == ["lookup_ticket"]  # only the tool the agent names
    assert offered(first)["lookup_ticket"]["parameters"]["required"] == ["ticket_id"]
    assert second["messages"][-1]["content"] == "Ticket T-42: the printer on floor 3 is on fire (status: open)"
    assert tickets.calls == [("lookup_ticket", {"ticket_id": "T-42"})]
    assert {r.authorization for r in tickets.requests} == {"Bearer tickets-secret"}


async def test_arguments_are_checked_against_the_servers_schema_before_any_call(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory
) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(
            Reply(tool_calls=[ToolCallSpec(name="lookup_ticket", arguments='{"ticket_id": 42}')]),
            Reply(text="sorry"),
        )
        rt = await runtime_factory(
            models={"main": openai_model(fake)}, mcp_servers={"tickets": {"url": tickets.url}}, tools=["mcp:tickets"]
        )
        await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="42?")
        result = fake.requests[1].body["messages"][-1]["content"]
    assert "invalid arguments for tool 'lookup_ticket'" in result and "42 is not of type 'string'" in result
    assert tickets.calls == []


async def test_a_hook_can_deny_an_mcp_tool(tickets: McpHttpServer, runtime_factory: RuntimeFactory) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(
            Reply(tool_calls=[ToolCallSpec(name="lookup_ticket", arguments='{"ticket_id": "T-1"}')]),
            Reply(text="I may not look that up."),
        )
        rt = await runtime_factory(
            models={"main": openai_model(fake)},
            mcp_servers={"tickets": {"url": tickets.url}},
            tools=["mcp:tickets"],
            hooks=["tests.tools.mcp.test_turns:DenyTickets"],
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="T-1?")
        result = fake.requests[1].body["messages"][-1]["content"]
    assert reply.text == "I may not look that up."
    assert result == "error: tool call denied: ticket lookups need a human's approval"
    assert tickets.calls == []


async def test_a_hanging_tool_hits_its_timeout_and_the_connection_stays_usable(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory
) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(
            Reply(tool_calls=[ToolCallSpec(name="hang")]),
            Reply(tool_calls=[ToolCallSpec(name="lookup_ticket", arguments='{"ticket_id": "T-2"}')]),
            Reply(text="done"),
        )
        rt = await runtime_factory(
            models={"main": openai_model(fake)},
            mcp_servers={"tickets": {"url": tickets.url, "timeout_s": 0.5}},
            tools=["mcp:tickets"],
            tool_timeout_s=60,
        )
        reply = await asyncio.wait_for(rt.ask(tenant="acme", origin=BG, conversation_key="k", text="go"), 20)
        after_hang = fake.requests[1].body["messages"][-1]["content"]
        after_lookup = fake.requests[2].body["messages"][-1]["content"]
    assert reply.text == "done"
    assert after_hang == "error: tool 'hang' did not finish within 0.5 s"
    assert after_lookup.startswith("Ticket T-2:")
    assert [name for name, _ in tickets.calls] == ["hang", "lookup_ticket"]


async def test_is_error_results_reach_the_model_as_errors(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory
) -> None:
    async with FakeAnthropicServer() as fake:
        fake.push(Reply(tool_calls=[ToolCallSpec(name="broken")]), Reply(text="The database is down."))
        rt = await runtime_factory(
            models={
                "main": {"provider": "anthropic", "model": "claude-x", "base_url": fake.base_url, "api_key": "k"}
            },
            mcp_servers={"tickets": {"url": tickets.url}},
            tools=["mcp:tickets"],
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="status?")
        [block] = fake.requests[1].body["messages"][-1]["content"]
    assert reply.text == "The database is down."
    assert block["type"] == "tool_result" and block["is_error"] is True
    assert block["content"] == "error: the ticket database is down"


async def test_images_reach_an_openai_model_after_the_tool_results(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory
) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(
            Reply(
                tool_calls=[
                    ToolCallSpec(name="chart"),
                    ToolCallSpec(name="lookup_ticket", arguments='{"ticket_id": "T-3"}'),
                ]
            ),
            Reply(text="Busy Monday."),
        )
        rt = await runtime_factory(
            models={"main": openai_model(fake)}, mcp_servers={"tickets": {"url": tickets.url}}, tools=["mcp:tickets"]
        )
        await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="chart?")
        messages = fake.requests[1].body["messages"]
        assert fake.protocol_errors == []
    assistant, chart, lookup, pictures = messages[-4:]
    call_ids = [c["id"] for c in assistant["tool_calls"]]
    assert [chart["tool_call_id"], lookup["tool_call_id"]] == call_ids  # every call answered, in order
    assert isinstance(chart["content"], str) and chart["content"].startswith("Tickets per day:")
    assert pictures["role"] == "user"
    image = [p for p in pictures["content"] if p["type"] == "image_url"]
    assert [p["image_url"]["url"] for p in image] == ["data:image/png;base64," + base64_of(PNG_1X1)]


async def test_images_reach_an_anthropic_model_inside_the_tool_result(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory
) -> None:
    async with FakeAnthropicServer() as fake:
        fake.push(Reply(tool_calls=[ToolCallSpec(name="chart")]), Reply(text="Busy Monday."))
        rt = await runtime_factory(
            models={
                "main": {"provider": "anthropic", "model": "claude-x", "base_url": fake.base_url, "api_key": "k"}
            },
            mcp_servers={"tickets": {"url": tickets.url}},
            tools=["mcp:tickets"],
        )
        await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="chart?")
        [block] = fake.requests[1].body["messages"][-1]["content"]
    kinds = [b["type"] for b in block["content"]]
    assert kinds == ["text", "image"]
    assert block["content"][1]["source"] == {"type": "base64", "media_type": "image/png", "data": base64_of(PNG_1X1)}


async def test_a_model_without_vision_gets_a_note_instead_of_the_image(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory
) -> None:
    async with FakeOpenAIServer() as fake:
        fake.push(Reply(tool_calls=[ToolCallSpec(name="chart")]), Reply(text="ok"))
        rt = await runtime_factory(
            models={"main": openai_model(fake, supports_images=False)},
            mcp_servers={"tickets": {"url": tickets.url}},
            tools=["mcp:tickets"],
        )
        await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="chart?")
        messages = fake.requests[1].body["messages"]
    assert messages[-1]["role"] == "tool" and "[image omitted]" in messages[-1]["content"]
    assert "image_url" not in json.dumps(messages)


async def test_tool_schemas_from_mcp_count_in_the_prompt_estimate(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory
) -> None:
    estimates: dict[str, int] = {}
    async with FakeOpenAIServer() as fake:
        rt = await runtime_factory(
            models={"main": openai_model(fake)},
            mcp_servers={"tickets": {"url": tickets.url}},
            tenants={
                "plain": {"agent": {"model": "main"}},
                "mcp": {"agent": {"model": "main", "tools": ["mcp:tickets"]}},
            },
        )

        def record(event: TurnEvent) -> None:
            if event.kind is EventKind.MODEL_REQUEST:
                estimates[event.tenant] = event.data["estimated_prompt_tokens"]

        rt.events.subscribe(record)
        for tenant in ("plain", "mcp"):
            await rt.ask(tenant=tenant, origin=BG, conversation_key="k", text="hello")
        schemas = json.dumps(fake.requests[1].body["tools"])
    assert "tools" not in fake.requests[0].body
    assert estimates["mcp"] - estimates["plain"] >= len(schemas) // 8  # at least ~half the schema JSON's tokens


async def test_a_server_that_cannot_start_is_logged_once_and_the_turns_go_on(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="botframework.mcp")
    async with FakeOpenAIServer() as fake:
        rt = await runtime_factory(
            models={"main": openai_model(fake)},
            mcp_servers={"broken": {"command": "/nonexistent/mcp-server"}, "tickets": {"url": tickets.url}},
            tools=["clock", "mcp:broken", "mcp:tickets/lookup_ticket"],
        )
        first = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="one")
        second = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="two")
        offers = [list(offered(r.body)) for r in fake.requests]
    assert not first.is_error and not second.is_error
    assert offers == [["clock", "lookup_ticket"]] * 2
    failures = [r for r in caplog.records if "mcp_servers.broken" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING
    assert "cannot start /nonexistent/mcp-server: no such file" in failures[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


@pytest.fixture
async def wiki_and_crm() -> AsyncIterator[tuple[McpHttpServer, McpHttpServer]]:
    async with (
        McpHttpServer("wiki", extra_tools={"search": "Search the wiki.", "clock": "Not the clock."}) as wiki,
        McpHttpServer("crm", extra_tools={"search": "Search the CRM."}) as crm,
    ):
        yield wiki, crm


async def test_name_clashes_leave_the_clashing_tools_out_and_are_logged_naming_both(
    wiki_and_crm: tuple[McpHttpServer, McpHttpServer], runtime_factory: RuntimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="botframework.mcp")
    wiki, crm = wiki_and_crm
    async with FakeOpenAIServer() as fake:
        rt = await runtime_factory(
            models={"main": openai_model(fake)},
            mcp_servers={"wiki": {"url": wiki.url}, "crm": {"url": crm.url}},
            tools=["clock", "mcp:wiki", "mcp:crm/search"],
        )
        await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="one")
        await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="two")
        tools = [offered(r.body) for r in fake.requests]
    assert set(tools[0]) == {"clock", "lookup_ticket", "hang", "chart", "broken", "grow"}
    assert tools[0]["clock"]["description"].startswith("The current date and time")  # the Python tool
    lines = sorted(r.getMessage() for r in caplog.records if r.name == "botframework.mcp")
    assert lines == [
        "mcp_servers.crm: tool 'search' clashes with tool 'search' of mcp_servers.wiki (tenant 'acme' lists both); "
        "both are left out",
        "mcp_servers.wiki: tool 'clock' clashes with the Python tool 'clock' of tenant 'acme'; "
        "the MCP tool is left out",
        "mcp_servers.wiki: tool 'search' clashes with tool 'search' of mcp_servers.crm (tenant 'acme' lists both); "
        "both are left out",
    ]


async def test_each_tenant_sees_only_its_servers_and_uses_its_own_credentials(
    tickets: McpHttpServer, runtime_factory: RuntimeFactory
) -> None:
    async with FakeOpenAIServer() as fake:
        rt = await runtime_factory(
            models={"main": openai_model(fake)},
            mcp_servers={
                "tickets": {
                    "url": tickets.url,
                    "headers": {"Authorization": "Bearer shared-token"},
                    "per_tenant": {"acme": {"headers": {"Authorization": "Bearer acme-token"}}},
                }
            },
            tenants={
                "acme": {"agent": {"model": "main", "tools": ["mcp:tickets/lookup_ticket"]}},
                "globex": {"agent": {"model": "main", "tools": ["mcp:tickets/lookup_ticket"]}},
                "initech": {"agent": {"model": "main", "tools": ["mcp:tickets/lookup_ticket"]}},
                "hooli": {"agent": {"model": "main", "tools": ["clock"]}},
            },
        )
        for tenant in ("acme", "globex", "initech", "hooli"):
            fake.push(
                Reply(tool_calls=[ToolCallSpec(name="lookup_ticket", arguments=f'{{"ticket_id": "{tenant}"}}')]),
                Reply(text="ok"),
            )
            await rt.ask(tenant=tenant, origin=BG, conversation_key="k", text="mine?")
        hooli_first = offered(fake.requests[6].body)
        hooli_result = fake.requests[7].body["messages"][-1]["content"]
    assert list(hooli_first) == ["clock"] and "unknown tool 'lookup_ticket'" in hooli_result
    assert [args["ticket_id"] for _, args in tickets.calls] == ["acme", "globex", "initech"]
    assert rt.mcp is not None
    assert sorted(str(c.tenant) for c in rt.mcp.connections) == ["None", "acme"]  # globex and initech share one
    calls = [r.authorization for r in tickets.requests if r.mcp_method == "tools/call"]
    assert calls == ["Bearer acme-token", "Bearer shared-token", "Bearer shared-token"]


def base64_of(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
