"""The QR login of a personal WeChat bot: show a QR code, follow its states, return the session.

``get_bot_qrcode`` gives a QR code (its content is a URL, shown as an ASCII QR code with segno);
``get_qrcode_status`` is polled about once a second (it is a long poll) and answers

- ``wait``: nobody scanned yet;
- ``scaned``: scanned, waiting for the person to confirm on the phone;
- ``need_verifycode``: WeChat shows a number on the phone that must be typed here;
- ``scaned_but_redirect``: keep polling on ``redirect_host``;
- ``expired``: the QR code timed out, a new one is shown (three times at most);
- ``binded_redirect``: this WeChat is already bound to this bot: the stored session stays;
- ``confirmed``: ``bot_token``, ``ilink_bot_id``, ``baseurl`` (the API host of this bot from now on)
  and ``ilink_user_id`` (who scanned).

The bot token is never shown or logged.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import segno

from botframework.channel_login import LoginConsole
from botframework.errors import LoginError
from channels.wechat_personal.api import ILinkApi, ILinkError

__all__ = ["AlreadyBound", "Session", "qr_text", "run_qr_login"]

MAX_QR_CODES = 3


@dataclass(frozen=True, kw_only=True)
class Session:
    """What a confirmed login hands back (kept in the channel state, never logged)."""

    bot_token: str
    bot_id: str
    base_url: str
    user_id: str = ""

    def to_state(self, *, logged_in_at: float) -> dict[str, object]:
        return {
            "bot_token": self.bot_token,
            "bot_id": self.bot_id,
            "base_url": self.base_url,
            "user_id": self.user_id,
            "logged_in_at": logged_in_at,
        }

    def __repr__(self) -> str:
        return f"Session(bot_id={self.bot_id!r}, base_url={self.base_url!r}, bot_token=***)"


class AlreadyBound(Exception):
    """The scanned WeChat account is already bound to this bot: no new session was issued."""


def qr_text(content: str) -> str:
    """``content`` as a QR code made of text characters, for a terminal."""
    out = io.StringIO()
    segno.make(content, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def _redirect_base(host: str, api_base_url: str) -> str:
    """The base URL of a redirect host, reached the way ``api_base_url`` is (https in production)."""
    scheme = urlsplit(api_base_url).scheme or "https"
    return f"{scheme}://{host.strip().strip('/')}"


async def run_qr_login(
    api: ILinkApi,
    console: LoginConsole,
    *,
    bot_type: str,
    timeout_s: float,
    poll_interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> Session:
    """Show QR codes until one is confirmed; LoginError if that does not happen within ``timeout_s``."""
    deadline = clock() + timeout_s
    shown = 0
    base_url = api.base_url

    async def show() -> str:
        nonlocal shown, base_url
        shown += 1
        try:
            qrcode, content = await api.get_qrcode(bot_type=bot_type)
        except ILinkError as exc:
            raise LoginError(f"could not get a login QR code from {api.base_url}: {exc}") from exc
        base_url = api.base_url
        console.say(qr_text(content))
        console.say(f"Scan this QR code with WeChat (or open {content} in WeChat) and confirm on the phone.")
        return qrcode

    qrcode = await show()
    scanned = False
    verify_code = ""
    while clock() < deadline:
        started = clock()
        try:
            status = await api.qrcode_status(qrcode, base_url=base_url, verify_code=verify_code)
        except ILinkError as exc:
            if not exc.retryable:
                raise LoginError(f"the login was refused: {exc}") from exc
            status = {"status": "wait"}  # a gateway hiccup: keep polling
        state = str(status.get("status") or "wait")
        if state == "confirmed":
            token, bot_id = str(status.get("bot_token") or ""), str(status.get("ilink_bot_id") or "")
            if not (token and bot_id):
                raise LoginError("WeChat confirmed the login but sent no bot token or bot id; try again")
            console.say("Confirmed.")
            return Session(
                bot_token=token,
                bot_id=bot_id,
                base_url=str(status.get("baseurl") or "") or base_url,
                user_id=str(status.get("ilink_user_id") or ""),
            )
        if state == "scaned" and not scanned:
            scanned = True
            verify_code = ""
            console.say("Scanned: confirm the login on the phone.")
        elif state == "need_verifycode":
            prompt = "That number did not match; type" if verify_code else "Type"
            verify_code = await console.ask(f"{prompt} the number WeChat shows on the phone:")
            if not verify_code:
                raise LoginError("WeChat asks for the number shown on the phone, and none was typed")
            continue
        elif state == "scaned_but_redirect":
            host = str(status.get("redirect_host") or "")
            if host:
                base_url = _redirect_base(host, api.base_url)
        elif state == "binded_redirect":
            raise AlreadyBound
        elif state in ("expired", "verify_code_blocked"):
            if shown >= MAX_QR_CODES:
                raise LoginError(f"the QR code expired {shown} times without a confirmed scan; run the command again")
            console.say("The QR code expired; here is a new one." if state == "expired" else "Too many wrong numbers.")
            scanned, verify_code = False, ""
            qrcode = await show()
            continue
        await asyncio.sleep(max(0.0, poll_interval_s - (clock() - started)))
    raise LoginError(f"nobody confirmed the login within {timeout_s:.0f} s; run the command again")
