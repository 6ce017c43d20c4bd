"""/metrics is not public; /healthz is, and says nothing about tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from botframework.config.schema import Config
from botframework.runtime import Runtime
from botframework.server import build_admin_app, build_app
from botframework.testing import ScriptedModel

TOKEN = "metrics-token-0123456789"


def _runtime(db_url: str, **server: Any) -> Runtime:
    config = Config.model_validate(
        {
            "server": server,
            "storage": {"url": db_url},
            "models": {"main": {"provider": "offline", "model": "scripted"}},
            "tenants": {"secret-customer": {"agent": {"model": "main"}, "channels": {"websocket": {}}}},
        }
    )
    return Runtime(config=config, clients={"main": ScriptedModel(name="main", config=config.models["main"])})


@pytest.fixture
async def client_for(db_url: str) -> AsyncIterator[Any]:
    clients: list[TestClient[Any, Any]] = []

    async def make(app_host: str | None = None, admin: bool = False, **server: Any) -> TestClient[Any, Any]:
        runtime = _runtime(db_url, **server)
        app = build_admin_app(runtime) if admin else build_app(runtime, host=app_host)
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_health_is_public_and_names_no_tenant(client_for: Any) -> None:
    client = await client_for(app_host="0.0.0.0")
    response = await client.get("/healthz")
    assert response.status == 200
    assert "secret-customer" not in await response.text()


async def test_metrics_on_a_public_listener_need_a_token_or_an_admin_port(client_for: Any) -> None:
    exposed = await client_for(app_host="0.0.0.0")
    response = await exposed.get("/metrics")
    assert response.status == 403 and "secret-customer" not in await response.text()
    local = await client_for(app_host="127.0.0.1")
    assert (await local.get("/metrics")).status == 200


async def test_a_metrics_token_is_required_when_set(client_for: Any) -> None:
    client = await client_for(app_host="0.0.0.0", metrics_token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401 and "secret-customer" not in await response.text()
    ok = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200 and "botframework_limit" in await ok.text()


async def test_with_an_admin_port_metrics_leave_the_public_listener(client_for: Any) -> None:
    public = await client_for(app_host="127.0.0.1", admin_port=0)
    assert (await public.get("/metrics")).status == 404
    admin = await client_for(admin=True, admin_port=0)
    response = await admin.get("/metrics")
    assert response.status == 200 and 'tenant="secret-customer"' in await response.text()
