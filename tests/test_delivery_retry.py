"""Delivery retries wait at least as long as the vendor asked."""

from __future__ import annotations

from botframework.errors import DeliveryError
from botframework.runtime import DELIVERY_RETRY_DELAYS_S, delivery_retry_delay


def test_a_vendors_longer_wait_wins_over_the_backoff() -> None:
    limited = DeliveryError("chat.postMessage failed: ratelimited", retry_after_s=30.0)
    assert delivery_retry_delay(1, limited) == 30.0


def test_a_vendors_shorter_wait_does_not_shorten_the_backoff() -> None:
    limited = DeliveryError("chat.postMessage failed: ratelimited", retry_after_s=0.1)
    assert delivery_retry_delay(3, limited) == DELIVERY_RETRY_DELAYS_S[2]


def test_without_a_vendor_wait_the_backoff_doubles() -> None:
    plain = RuntimeError("connection reset")
    assert [delivery_retry_delay(n, plain) for n in (1, 2, 3)] == list(DELIVERY_RETRY_DELAYS_S[:3])
