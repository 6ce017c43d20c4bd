"""WeChat Official Account XML -> Turn: the same message XML and rules as WeCom (:mod:`channels.wecom.events`).

Followers' ``text`` messages (and ``voice`` with ``Recognition``) become turns; other media become a
placeholder turn; events (subscribe, unsubscribe, menu clicks, ...) are acked without a turn.
Dedupe on ``MsgId``. The conversation is the follower's openid.
"""

from __future__ import annotations

from collections.abc import Mapping

from botframework.turn import Turn
from channels.wecom.events import parse_xml, to_turn

__all__ = ["CHANNEL", "parse_message", "parse_xml"]

CHANNEL = "wechat"


def parse_message(fields: Mapping[str, str], *, tenant: str) -> Turn | None:
    """An Official Account message -> Turn (or None: an event, or nothing to answer)."""
    return to_turn(fields, tenant=tenant, channel=CHANNEL)
