"""Channel health on /healthz (public: no tenant names) and /metrics (per tenant), and channel probes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pytest
from aiohttp.test_utils import TestClient, TestServer

from botframework.channel import ChannelAdapter, Outbound
from botframework.channel_commands import probe_channels
from botframework.channel_state import ChannelState
from botframework.config.schema import Config
from botframework.config.types import StrictModel
from botframework.health import ChannelHealth, health_report
from botframework.plugins import CHANNELS
from botframework.runtime import Runtime
from botframework.server import build_app
from storage.channel_state import SqlChannelState
from storage.db import Database

CHANNEL = "healthtest"


class HealthConfig(StrictModel):
    state: Literal["up", "down"] = "up"
    """What health() says."""


class HealthAdapter(ChannelAdapter[HealthConfig]):
    name = CHANNEL
    config_model = HealthConfig

    def health(self) -> ChannelHealth:
        if self.config.state == "down":
            return ChannelHealth.down("login_required", "the session expired; log in again")
        return ChannelHealth.up()

    @classmethod
    async def probe(cls, *, tenant: str, config: StrictModel, state: ChannelState) -> ChannelHealth:
        if await state.get("session") is None:
            return ChannelHealth.down("login_required", "no session stored")
        return ChannelHealth.up()

    async def deliver(self, outbound: Outbound) -> None:
        return None


@pytest.fixture(autouse=True)
def channel() -> Iterator[None]:
    with CHANNELS.registered(CHANNEL, HealthAdapter):
        yield


def config(db_url: str, states: dict[str, str]) -> Config:
    return Config.model_validate(
        {
            "storage": {"url": db_url},
            "models": {"main": {"provider": "offline", "model": "m"}},
            "tenants": {
                tenant: {"agent": {"model": "main"}, "channels": {CHANNEL: {"state": state}}}
                for tenant, state in states.items()
            },
        }
    )


async def test_healthz_is_ok_when_every_channel_is_up(db_url: str) -> None:
    runtime = Runtime(config=config(db_url, {"acme": "up"}))
    async with TestClient(TestServer(build_app(runtime))) as client:
        response = await client.get("/healthz")
        assert response.status == 200 and await response.json() == {"status": "ok"}


async def test_healthz_says_degraded_without_tenant_names_and_metrics_name_the_tenant(db_url: str) -> None:
    runtime = Runtime(config=config(db_url, {"acme-secret-tenant": "down", "globex": "up"}))
    async with TestClient(TestServer(build_app(runtime))) as client:
        response = await client.get("/healthz")
        body = await response.json()
        assert response.status == 200
        assert body == {
            "status": "degraded",
            "channels": [
                {"channel": CHANNEL, "status": "login_required", "detail": "the session expired; log in again"}
            ],
        }
        assert "acme-secret-tenant" not in await response.text()
        metrics = await (await client.get("/metrics")).text()
    down = 'botframework_channel_up{channel="healthtest",status="login_required",tenant="acme-secret-tenant"} 0.0'
    assert down in metrics
    assert 'botframework_channel_up{channel="healthtest",status="ok",tenant="globex"} 1.0' in metrics


def test_health_report_lists_only_the_channels_that_are_down() -> None:
    class Up:
        name = "a"

        def health(self) -> ChannelHealth:
            return ChannelHealth.up("connecting")

    class Down:
        name = "b"

        def health(self) -> ChannelHealth:
            return ChannelHealth.down("displaced", "another process holds the connection")

    assert health_report([Up()]) == {"status": "ok"}  # type: ignore[list-item]
    report = health_report([Up(), Down()])  # type: ignore[list-item]
    assert report["status"] == "degraded" and [c["channel"] for c in report["channels"]] == ["b"]


async def test_probe_reads_the_channel_state_per_tenant(db_url: str) -> None:
    cfg = config(db_url, {"acme": "up", "globex": "up"})
    db = Database(db_url)
    await db.upgrade()
    await SqlChannelState(db, tenant="acme", channel=CHANNEL).set("session", {"token": "x"})
    await db.close()
    assert await probe_channels(cfg) == [f"tenants.globex.channels.{CHANNEL}: login_required: no session stored"]
