"""Channel health: what each adapter says about its connection, on ``/healthz``, ``/metrics`` and in probes.

A webhook channel is healthy as long as the server runs. A channel that keeps a connection or a
session of its own can be "up" or not independently of the process: its session expired and an
operator must log in again, another process took its connection over, its credentials are refused.
Restarting the process fixes none of these, so they never turn ``/healthz`` into an error status
(that would only make an orchestrator restart the bot): ``/healthz`` stays 200 and says
``"degraded"``, listing each channel that is not up by name and state, without tenant names (the
endpoint is public). ``/metrics`` (an operator's endpoint) has one gauge per tenant and channel,
``botframework_channel_up{tenant, channel, status}``, and the adapter logs the tenant and what to
do when its state changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from botframework.channel import ChannelAdapter

__all__ = ["ChannelHealth", "ChannelHealthCollector", "health_report"]


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    """One adapter's state: ``ok`` or not, a short machine-readable ``status``, and what to do."""

    ok: bool = True
    status: str = "ok"
    """``ok``, ``connecting``, or the channel's name for a problem (``login_required``, ``displaced``...)."""
    detail: str = ""
    """One sentence for the operator, without tenant names or secrets."""

    @classmethod
    def up(cls, status: str = "ok", detail: str = "") -> ChannelHealth:
        return cls(ok=True, status=status, detail=detail)

    @classmethod
    def down(cls, status: str, detail: str) -> ChannelHealth:
        return cls(ok=False, status=status, detail=detail)


def health_report(
    adapters: Iterable[ChannelAdapter[Any]], *, storage: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``/healthz`` body: ``{"status": "ok"}``, or ``"degraded"`` with the channels that are not up
    and, while the database does not answer, ``storage`` (see :mod:`botframework.storage_health`)."""
    problems = []
    for adapter in adapters:
        health = adapter.health()
        if not health.ok:
            problems.append({"channel": adapter.name, "status": health.status, "detail": health.detail})
    if not problems and storage is None:
        return {"status": "ok"}
    problems.sort(key=lambda p: (p["channel"], p["status"]))
    report: dict[str, Any] = {"status": "degraded", "channels": problems}
    if storage is not None:
        report["storage"] = dict(storage)
    return report


class ChannelHealthCollector(Collector):
    """``botframework_channel_up{tenant, channel, status}``: 1 when the adapter is up, read at scrape time."""

    def __init__(self, adapters: Mapping[tuple[str, str], ChannelAdapter[Any]]) -> None:
        self._adapters = adapters

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "botframework_channel_up",
            "1 when a channel's connection or session is up, 0 when it needs attention (status says why)",
            labels=["tenant", "channel", "status"],
        )
        for (tenant, channel), adapter in sorted(self._adapters.items()):
            health = adapter.health()
            gauge.add_metric([tenant, channel, health.status], 1.0 if health.ok else 0.0)
        yield gauge
