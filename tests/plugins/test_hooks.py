"""Hooks named by entry point (``botframework.hooks``), applied in a real turn."""

from __future__ import annotations

from typing import Any

import pytest

from botframework.config import parse_config
from botframework.errors import ConfigError
from tests.fakes import Reply, ToolCallSpec
from tests.fakes.openai_server import FakeOpenAIServer
from tests.plugins.conftest import Install
from tests.test_invocation import BG, RUNS, openai_model, runtime_factory  # noqa: F401

NO_LOOKUPS = """
from botframework.hooks import Allow, Deny, TurnHooks

class NoLookups(TurnHooks):
    async def approve_tool(self, ctx, call):
        return Deny("lookups are off by policy") if call.name == "lookup" else Allow()
"""


def install_policy(install: Install) -> None:
    entry_points = {"botframework.hooks": {"no-lookups": "bf_policy:NoLookups"}}
    install("bf-policy", entry_points, modules={"bf_policy": NO_LOOKUPS})


async def test_a_hook_from_an_installed_package_is_named_in_config_and_applied(
    install: Install,
    runtime_factory: Any,  # noqa: F811
) -> None:
    install(
        "bf-policy", {"botframework.hooks": {"no-lookups": "bf_policy:NoLookups"}}, modules={"bf_policy": NO_LOOKUPS}
    )
    async with FakeOpenAIServer() as fake:
        fake.push(Reply(tool_calls=[ToolCallSpec(name="lookup", arguments='{"word": "x"}')]), Reply(text="fine"))
        rt = await runtime_factory(
            {"main": openai_model(fake)}, tools=["tests.test_invocation:lookup"], hooks=["no-lookups"]
        )
        reply = await rt.ask(tenant="acme", origin=BG, conversation_key="k", text="look up x")
    assert reply.text == "fine" and RUNS == []
    assert "lookups are off by policy" in fake.requests[1].messages[-1]["content"]


def test_an_unknown_hook_name_is_a_config_error_listing_the_installed_ones(install: Install) -> None:
    install(
        "bf-policy", {"botframework.hooks": {"no-lookups": "bf_policy:NoLookups"}}, modules={"bf_policy": NO_LOOKUPS}
    )
    text = "models:\n  main: {provider: offline}\ntenants:\n  acme:\n    agent: {model: main, hooks: [no-lookup]}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    [problem] = [str(p) for p in info.value.problems]
    assert problem.startswith("tenants.acme.agent.hooks.0: unknown hook 'no-lookup' (available: no-lookups;")
