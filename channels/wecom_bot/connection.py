"""The WeCom AI bot long connection: subscribe, heartbeat, acknowledged frames, reconnect, step aside.

Frames are JSON ``{cmd, headers: {req_id}, body}``; WeCom acknowledges each frame we send with
``{headers: {req_id}, errcode, errmsg}`` (no ``cmd``). The protocol, as :class:`BotConnection` runs it:

- connect, send ``aibot_subscribe {bot_id, secret}`` and wait for its ack (errcode 0);
- ``ping`` every ``ping_interval_s``; when two pings in a row got no ack the connection is dead:
  close it and reconnect;
- reconnect after any drop with a backoff of 1 s doubling to 30 s (reset once subscribed again);
  five refused subscriptions in a row (a wrong Bot ID or Secret) stop it, said on ``/healthz``;
- ONE connection per bot: when another one subscribes, WeCom sends this one a
  ``disconnected_event`` and closes it. This connection then stops and says so; it does not
  reconnect, because fighting back would only knock the other one off in turn;
- frames that share a ``req_id`` (the updates of one streamed reply) go one at a time, each after
  the previous one's ack (:meth:`BotConnection.request`).

Callbacks (``aibot_msg_callback``, ``aibot_event_callback``) are handed to ``on_callback`` one at a
time, in arrival order, by a task of their own, so a slow database never delays heartbeat acks.
The secret is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from botframework.errors import ChannelError
from botframework.health import ChannelHealth

__all__ = ["BAD_REQ_ID", "NOT_SUBSCRIBED", "STREAM_EXPIRED", "BotApiError", "BotConnection", "new_req_id"]

log = logging.getLogger(__name__)

STREAM_EXPIRED = 846608
"""The streamed reply may no longer be updated (6 minutes after the user's message)."""
BAD_REQ_ID = 846605
"""Unknown or stale ``req_id`` (for instance one from a connection before a restart)."""
NOT_SUBSCRIBED = 846609
"""The connection is not subscribed: subscribe again."""
_FINAL = frozenset({STREAM_EXPIRED, BAD_REQ_ID})
MAX_AUTH_FAILURES = 5
MISSED_PINGS = 2


class BotApiError(ChannelError):
    """A frame was refused (``errcode``) or could not be sent or acknowledged (errcode 0)."""

    def __init__(self, message: str, *, errcode: int = 0, retryable: bool) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.retryable = retryable


def new_req_id(prefix: str) -> str:
    return f"{prefix}_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


Callback = Callable[[Mapping[str, Any]], Awaitable[None]]


class BotConnection:
    """One AI bot's long connection; :meth:`run` until cancelled, displaced or refused."""

    backoff_start_s = 1.0
    backoff_max_s = 30.0

    def __init__(
        self,
        *,
        url: str,
        bot_id: str,
        secret: str,
        ping_interval_s: float,
        ack_timeout_s: float,
        on_callback: Callback,
        label: str,
    ) -> None:
        self._url = url
        self._bot_id = bot_id
        self._secret = secret
        self._ping_interval_s = ping_interval_s
        self._ack_timeout_s = ack_timeout_s
        self._on_callback = on_callback
        self._label = label
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[Mapping[str, Any]]] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._inbound: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        self._missed_pings = 0
        self._displaced = False
        self.subscribed = asyncio.Event()
        """Set while the connection is subscribed."""
        self.health = ChannelHealth.up("connecting")
        self.subscriptions = 0
        """Successful subscriptions so far (reconnects included)."""

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        consumer = asyncio.create_task(self._consume(), name=f"{self._label}:callbacks")
        backoff, refused = self.backoff_start_s, 0
        try:
            async with aiohttp.ClientSession() as http:
                while True:
                    outcome = await self._connect_once(http)
                    if outcome == "subscribed":
                        backoff, refused = self.backoff_start_s, 0
                    elif outcome == "refused":
                        refused += 1
                        if refused >= MAX_AUTH_FAILURES:
                            log.error(
                                "%s: WeCom refused the subscription %d times in a row; check bot_id and secret, "
                                "then restart. Not reconnecting.",
                                self._label,
                                refused,
                            )
                            self.health = ChannelHealth.down(
                                "auth_failed", "WeCom refuses the AI bot's bot_id/secret; fix them and restart"
                            )
                            return
                    if self._displaced:
                        return
                    self.health = ChannelHealth.down(
                        "reconnecting", f"the long connection dropped; retrying in {backoff:.0f} s"
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.backoff_max_s)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def _connect_once(self, http: aiohttp.ClientSession) -> str:
        """One connection: ``subscribed`` (and it later dropped), ``refused`` or ``failed``."""
        reader: asyncio.Task[None] | None = None
        pinger: asyncio.Task[None] | None = None
        try:
            ws = await http.ws_connect(self._url, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=5.0))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("%s: cannot connect to %s: %s", self._label, self._url, type(exc).__name__)
            return "failed"
        try:
            self._ws = ws
            self._missed_pings = 0
            reader = asyncio.create_task(self._read(ws), name=f"{self._label}:reader")
            try:
                await self.request("aibot_subscribe", {"bot_id": self._bot_id, "secret": self._secret})
            except BotApiError as exc:
                log.warning("%s: subscription failed: %s", self._label, exc)
                return "refused" if exc.errcode else "failed"
            self.subscriptions += 1
            self.subscribed.set()
            self.health = ChannelHealth.up()
            log.info("%s: subscribed as bot %s", self._label, self._bot_id)
            pinger = asyncio.create_task(self._ping(ws), name=f"{self._label}:ping")
            await reader
            return "subscribed"
        finally:
            self.subscribed.clear()
            for task in (pinger, reader):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(*(t for t in (pinger, reader) if t is not None), return_exceptions=True)
            self._ws = None
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(BotApiError(f"{self._label}: the connection closed", retryable=True))
            await ws.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                if message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
                continue
            try:
                frame = json.loads(message.data)
            except ValueError:
                log.warning("%s: ignoring a frame that is not JSON (%d characters)", self._label, len(message.data))
                continue
            if not isinstance(frame, dict):
                continue
            headers = frame.get("headers")
            req_id = str(headers.get("req_id") or "") if isinstance(headers, dict) else ""
            cmd = frame.get("cmd")
            if not cmd:
                if req_id.startswith("ping_"):
                    self._missed_pings = 0
                future = self._pending.get(req_id)
                if future is not None and not future.done():
                    future.set_result(frame)
                continue
            body = frame.get("body")
            event = body.get("event") if isinstance(body, dict) else None
            if (
                cmd == "aibot_event_callback"
                and isinstance(event, dict)
                and event.get("eventtype") == "disconnected_event"
            ):
                self._displaced = True
                log.warning(
                    "%s: another connection subscribed as bot %s and WeCom closed this one; stepping aside "
                    "(not reconnecting). Run the bot in one place only, or let one process hold the connection.",
                    self._label,
                    self._bot_id,
                )
                self.health = ChannelHealth.down(
                    "displaced", "another connection took over this AI bot; this one stopped and does not reconnect"
                )
                await ws.close()
                return
            if cmd in ("aibot_msg_callback", "aibot_event_callback"):
                self._inbound.put_nowait(frame)

    async def _consume(self) -> None:
        while True:
            frame = await self._inbound.get()
            try:
                await self._on_callback(frame)
            except Exception:
                log.exception("%s: handling a %s frame failed", self._label, frame.get("cmd"))

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await asyncio.sleep(self._ping_interval_s)
            if self._missed_pings >= MISSED_PINGS:
                log.warning("%s: %d heartbeats unanswered; reconnecting", self._label, self._missed_pings)
                await ws.close()
                return
            self._missed_pings += 1
            try:
                await ws.send_str(json.dumps({"cmd": "ping", "headers": {"req_id": new_req_id("ping")}}))
            except (aiohttp.ClientError, ConnectionError) as exc:
                log.warning("%s: heartbeat failed (%s); reconnecting", self._label, type(exc).__name__)
                await ws.close()
                return

    # -- sending ----------------------------------------------------------------------------

    async def request(self, cmd: str, body: Mapping[str, Any], *, req_id: str | None = None) -> Mapping[str, Any]:
        """Send one frame and wait for its ack; frames of one ``req_id`` go one at a time.

        Raises BotApiError: refused (``errcode``), not connected, or no ack within ``ack_timeout_s``.
        """
        req_id = req_id or new_req_id(cmd)
        lock, users = self._locks.get(req_id) or (asyncio.Lock(), 0)
        self._locks[req_id] = (lock, users + 1)
        try:
            async with lock:
                return await self._send_and_wait(cmd, body, req_id)
        finally:
            lock, users = self._locks[req_id]
            if users <= 1:
                del self._locks[req_id]
            else:
                self._locks[req_id] = (lock, users - 1)

    async def _send_and_wait(self, cmd: str, body: Mapping[str, Any], req_id: str) -> Mapping[str, Any]:
        ws = self._ws
        if ws is None or ws.closed:
            raise BotApiError(f"{self._label}: {cmd} not sent: the long connection is down", retryable=True)
        future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            await ws.send_str(json.dumps({"cmd": cmd, "headers": {"req_id": req_id}, "body": body}, ensure_ascii=False))
            async with asyncio.timeout(self._ack_timeout_s):  # wait_for can swallow a cancel (Python < 3.12)
                ack = await future
        except TimeoutError as exc:
            raise BotApiError(
                f"{self._label}: {cmd} got no ack within {self._ack_timeout_s:.0f} s", retryable=True
            ) from exc
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise BotApiError(f"{self._label}: {cmd} not sent: {type(exc).__name__}", retryable=True) from exc
        finally:
            if self._pending.get(req_id) is future:
                del self._pending[req_id]
        try:
            errcode = int(ack.get("errcode") or 0)
        except (TypeError, ValueError):
            errcode = -1
        if errcode:
            if errcode == NOT_SUBSCRIBED and cmd != "aibot_subscribe":
                await ws.close()  # the reconnect subscribes again
            errmsg = str(ack.get("errmsg") or "")[:200]
            raise BotApiError(
                f"{self._label}: {cmd} refused: errcode {errcode} {errmsg}".rstrip(),
                errcode=errcode,
                retryable=errcode not in _FINAL,
            )
        return ack
