"""A streamed AI bot reply while the model writes it: snapshots of the text, throttled, acked one by one.

WeCom's stream is not a placeholder that is edited (:mod:`botframework.live`) but a sequence of
frames on the callback's ``req_id``, each holding the FULL text so far, that must be sent one at a
time (each after its ack), end with exactly one ``finish: true`` frame, and end within 6 minutes of
the user's message. :class:`ReplyStream` is the core's reply sink for it: it sends the newest
snapshot at most every ``interval_s``, skips a snapshot while the previous frame waits for its ack
(the next one carries the newer text), never sends a snapshot shorter than the one shown (after a
model retry restarts the answer, updates resume once the new text is longer), and stops at the
stream window. ``deliver`` then closes it and sends the finishing frame with the final text.

An update that fails is logged and ends the updates; it never fails the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from botframework.render import ChannelLimit, render_chunks

__all__ = ["ReplyStream"]

log = logging.getLogger(__name__)


class ReplyStream:
    """The updates of one streamed reply (see the module docstring)."""

    def __init__(
        self,
        *,
        send: Callable[[str], Awaitable[None]],
        render: Callable[[str], str],
        limit: ChannelLimit,
        interval_s: float,
        deadline: float,
        label: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._render = render
        self._limit = limit
        self._interval_s = interval_s
        self._deadline = deadline
        self._label = label
        self._clock = clock
        self._text = ""
        self.shown = ""
        """The last snapshot WeCom acknowledged."""
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None
        self._sending = False
        self._closed = False
        self.error: Exception | None = None
        """Why updates stopped early, if an update failed."""

    @property
    def started(self) -> bool:
        """Whether any update went out (the stream exists on WeCom's side)."""
        return bool(self.shown)

    async def delta(self, text: str) -> None:
        if self._closed:
            return
        self._text += text
        self._schedule()

    async def reset(self) -> None:
        self._text = ""  # the shown snapshot stays until a longer one replaces it

    async def notice(self, text: str) -> None:
        """Ignored: a stream's snapshots may only grow, so a transient status cannot be shown."""
        return None

    def _schedule(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._update())

    def _snapshot(self) -> str:
        size = self._limit.size
        head = self._text if size is None else self._text[: 2 * size]
        parts = render_chunks(head, self._render, self._limit) if head.strip() else []
        return parts[0] if parts else ""

    async def _update(self) -> None:
        await asyncio.sleep(max(0.0, self._last + self._interval_s - self._clock()))
        if self._closed or self._clock() >= self._deadline:
            return
        snapshot = self._snapshot()
        if len(snapshot) <= len(self.shown):
            return
        self._sending = True
        try:
            await self._send(snapshot)
        except Exception as exc:
            log.warning("%s: stream update failed, no more updates: %s", self._label, exc)
            self.error = exc
            self._closed = True
            return
        finally:
            self._sending = False
        self.shown = snapshot
        self._last = self._clock()
        if len(self._snapshot()) > len(self.shown):
            self._schedule_after_this()

    def _schedule_after_this(self) -> None:
        # Called from inside the running update: the next one starts once this one returns.
        asyncio.get_running_loop().call_soon(self._schedule)

    def abandon(self) -> None:
        """Stop updating without waiting (a turn that will never be delivered)."""
        self._closed = True

    async def close(self) -> str:
        """No more updates (one in flight is awaited, so frames never overlap); the last shown snapshot."""
        self._closed = True
        if self._task is not None and not self._task.done():
            if not self._sending:
                self._task.cancel()  # only waiting for its turn: nothing is on the wire
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.shown
