"""No behaviour change: the bodies the fake servers receive equal those recorded from the SDKs' own
typed request path (``tests/fixtures/providers``), for a tool round, images and the Anthropic shape.

Every scenario runs twice through the same client, so the second run is served from the wire
cache (messages carry ids as stored ones do) and must still send the same bodies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from botframework.models.base import ModelClient
from tests.fakes import FakeModelServer
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.providers.clients import anthropic_client, openai_client
from tests.providers.wire_scenarios import FIXTURES, record_bodies

Case = tuple[str, Callable[[], FakeModelServer], Callable[[str], ModelClient], bool]

CASES: list[Case] = [
    ("openai", FakeOpenAIServer, openai_client, True),
    ("anthropic", FakeAnthropicServer, anthropic_client, False),
]


def _recorded(provider: str) -> dict[str, list[Any]]:
    data: dict[str, list[Any]] = json.loads((FIXTURES / f"{provider}_bodies.json").read_text())
    return data


@pytest.mark.parametrize(("provider", "server", "client", "temperature"), CASES, ids=[c[0] for c in CASES])
async def test_the_bodies_sent_are_the_recorded_ones(
    provider: str,
    server: Callable[[], FakeModelServer],
    client: Callable[[str], ModelClient],
    temperature: bool,
) -> None:
    recorded = _recorded(provider)
    async with server() as fake:
        c = client(fake.base_url)
        try:
            first = await record_bodies(c, fake, temperature=temperature)
            again = await record_bodies(c, fake, temperature=temperature)
        finally:
            await c.close()
        assert fake.protocol_errors == []
    assert set(first) == set(recorded)
    for scenario, bodies in recorded.items():
        assert first[scenario] == bodies, scenario
        assert again[scenario] == bodies, f"{scenario} (from the wire cache)"


def test_the_fixtures_cover_what_they_claim() -> None:
    """Guard the fixtures themselves: a tool round with its results, images, the Anthropic rewrites."""
    openai = _recorded("openai")
    second = openai["tool_round/stream"][1]["messages"]
    assert [m["role"] for m in second[-3:]] == ["assistant", "tool", "tool"]
    assert any(p.get("type") == "image_url" for p in openai["images/once"][0]["messages"][0]["content"])
    anthropic = _recorded("anthropic")
    shape = anthropic["shape/once"][0]
    assert shape["messages"][0]["content"][0]["text"] == "(earlier conversation omitted)"
    assert shape["system"].endswith("Summary: they talked about cats.")
    results = [b for m in shape["messages"] for b in m["content"] if b["type"] == "tool_result"]
    assert results and results[0]["content"][1]["type"] == "image"
