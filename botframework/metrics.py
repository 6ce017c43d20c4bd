"""Prometheus metrics. One registry per runtime, so several runtimes (tests) never collide."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from botframework.models.router import AttemptRecord

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter(
            "botframework_inbound_events_total",
            "Inbound channel events by result",
            ["tenant", "channel", "result"],
            registry=r,
        )
        self.turns = Counter(
            "botframework_turns_total",
            "Finished turns by outcome",
            ["tenant", "origin", "outcome"],
            registry=r,
        )
        self.turn_seconds = Histogram(
            "botframework_turn_duration_seconds",
            "Time to answer a turn",
            ["tenant"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_calls = Counter(
            "botframework_model_calls_total", "Model calls by outcome", ["model", "outcome"], registry=r
        )
        self.model_seconds = Histogram(
            "botframework_model_call_duration_seconds",
            "Model call latency",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "botframework_model_tokens_total",
            "Tokens reported by providers",
            ["model", "direction"],
            registry=r,
        )
        self.queue_depth = Gauge("botframework_queue_depth", "Turns accepted and not yet finished", registry=r)
        self.deliveries = Counter(
            "botframework_deliveries_total", "Reply deliveries by result", ["channel", "result"], registry=r
        )
        self.limit_refusals = Counter(
            "botframework_limit_refusals_total",
            "Messages refused by a limit (input_too_long, queue_full, quota_exceeded, rate_limited)",
            ["tenant", "limit"],
            registry=r,
        )
        self.limit_value = Gauge("botframework_limit", "Configured limits", ["tenant", "limit"], registry=r)
        self.model_calls_in_flight = Gauge(
            "botframework_model_calls_in_flight", "Model calls running now (per tenant)", ["tenant"], registry=r
        )
        self.tokens_today = Gauge(
            "botframework_tenant_tokens_today", "Model tokens used today (UTC) per the ledger", ["tenant"], registry=r
        )
        self.webhook_rejections = Counter(
            "botframework_webhook_rejections_total",
            "Webhook requests refused (bad signature, stale or replayed)",
            ["channel"],
            registry=r,
        )

    def observe_model_call(self, record: AttemptRecord) -> None:
        self.model_calls.labels(record.model_name, record.outcome).inc()
        self.model_seconds.labels(record.model_name).observe(record.latency_ms / 1000)
        if record.usage.input_tokens:
            self.tokens.labels(record.model_name, "input").inc(record.usage.input_tokens)
        if record.usage.output_tokens:
            self.tokens.labels(record.model_name, "output").inc(record.usage.output_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
