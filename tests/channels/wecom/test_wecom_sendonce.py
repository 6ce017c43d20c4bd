"""WeCom's duplicate check covers a resend after a crash, and only that."""

from __future__ import annotations

from channels.wecom.adapter import DUPLICATE_CHECK_MARGIN_S, DUPLICATE_CHECK_MAX_S, duplicate_check_window


def test_the_window_reaches_back_past_the_interrupted_attempt() -> None:
    assert duplicate_check_window(0.0) == DUPLICATE_CHECK_MARGIN_S
    assert duplicate_check_window(125.7) == 125 + DUPLICATE_CHECK_MARGIN_S


def test_the_window_stays_within_what_wecom_accepts() -> None:
    assert duplicate_check_window(10 * 24 * 3600.0) == DUPLICATE_CHECK_MAX_S == 4 * 3600
