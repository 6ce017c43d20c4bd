"""The real server as a subprocess, over real sockets: streaming, reconnects, tenants, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.support import ChatClient, ServerProcess, metric_value, write_config
from tests.fakes import RecordedRequest, Reply
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.slow


def _answer(request: RecordedRequest) -> Reply:
    last_user = [m for m in request.messages if m["role"] == "user"][-1]["content"]
    text = last_user if isinstance(last_user, str) else "".join(p.get("text", "") for p in last_user)
    return Reply(text=f"You said: {text}. Here is a longer answer streamed in pieces.", chunks=5)


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(default=_answer) as server:
        yield server


@pytest.fixture
async def server(tmp_path: Path, db_url: str, model: FakeOpenAIServer) -> AsyncIterator[ServerProcess]:
    config = write_config(
        tmp_path / "bot.yaml",
        db_url=db_url,
        model_base_url=model.base_url,
        tenants={
            "acme": {
                "agent": {"model": "main", "system_prompt": "You are the ACME bot."},
                "channels": {"websocket": {"token": "acme-ws-token"}},
            },
            "beta": {
                "agent": {"model": "main", "system_prompt": "You are the BETA bot."},
                "channels": {"websocket": {}},
            },
        },
    )
    proc = ServerProcess(config, tmp_path / "server.log")
    await proc.start()
    try:
        yield proc
    finally:
        assert await proc.stop() == 0, (tmp_path / "server.log").read_text()[-3000:]


async def test_websocket_round_trip_history_tenants_and_metrics(
    server: ServerProcess, model: FakeOpenAIServer
) -> None:
    async with aiohttp.ClientSession() as http:
        assert await (await http.get(f"{server.url}/healthz")).json() == {"status": "ok"}
        metrics_before = await (await http.get(f"{server.url}/metrics")).text()

        ann = await ChatClient.connect(http, server.url, "acme", "ann", token="acme-ws-token")
        assert (await ann.wait_for("history"))["messages"] == []
        assert ann.user != "ann" and ann.resume  # anonymous: the server names the user
        await ann.send("c1", "the secret word is pineapple")
        done = await ann.wait_for("done", "c1")
        assert (
            done["text"]
            == "You said: the secret word is pineapple. Here is a longer answer streamed in pieces."
        )
        deltas = ann.of("delta", "c1")
        assert len(deltas) >= 2 and "".join(d["text"] for d in deltas) == done["text"]
        assert ann.of("accepted", "c1")
        await ann.close()

        impostor = await ChatClient.connect(http, server.url, "acme", ann.user, token="acme-ws-token")
        assert (await impostor.wait_for("history"))["messages"] == []  # naming a user is not being them
        await impostor.close()
        again = await ChatClient.connect(http, server.url, "acme", "ann", token="acme-ws-token", resume=ann.resume)
        history = (await again.wait_for("history"))["messages"]
        assert again.user == ann.user
        assert [(m["role"], m["id"]) for m in history] == [("user", "c1"), ("assistant", None)]
        assert history[0]["text"] == "the secret word is pineapple"
        await again.send("c2", "what was the secret word?")
        await again.wait_for("done", "c2")
        second_request = model.requests[-1].messages
        assert any("pineapple" in str(m.get("content")) for m in second_request), "history not replayed"
        await again.close()

        other = await ChatClient.connect(http, server.url, "beta", "ann")
        assert (await other.wait_for("history"))["messages"] == []
        await other.send("c1", "what was the secret word?")
        await other.wait_for("done", "c1")
        beta_requests = [r for r in model.requests if "BETA" in str(r.messages[0]["content"])]
        assert beta_requests and not any("pineapple" in str(r.body) for r in beta_requests)
        await other.close()

        wrong = await ChatClient.connect(http, server.url, "acme", "ann", token="wrong", resume=ann.resume)
        assert await wrong.closed_with() == 4401
        assert wrong.frames == []  # refused before any frame

        metrics_after = await (await http.get(f"{server.url}/metrics")).text()
        turns = "botframework_turns_total"
        assert (
            metric_value(metrics_after, turns, tenant="acme", outcome="ok")
            - metric_value(metrics_before, turns, tenant="acme", outcome="ok")
            == 2
        )
        assert metric_value(metrics_after, turns, tenant="beta", outcome="ok") == 1
        assert metric_value(metrics_after, "botframework_model_calls_total", model="main", outcome="ok") == 3
        assert metric_value(metrics_after, "botframework_model_tokens_total", direction="input") > 0

        for path in ("/t/nobody/ws?user=x", "/t/nobody/chat", "/t/acme/slack/events", "/t/beta/nothing"):
            assert (await http.get(f"{server.url}{path}")).status == 404
        page = await http.get(f"{server.url}/t/acme/chat")
        assert page.status == 200 and "Content-Security-Policy" in page.headers
