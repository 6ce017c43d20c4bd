"""Live replies: show a reply in one placeholder message while it is produced, for any channel.

A channel supplies two vendor calls and a renderer: ``post`` creates the placeholder and returns a
handle to it (a Slack ``ts``, a Feishu ``message_id``), ``edit`` replaces its text, ``preview`` turns
the text so far into what the placeholder shows. :class:`ThrottledLiveReply` owns the rest, the same
for every channel: the first delta posts the placeholder, later deltas edit it at most every
``interval`` seconds (a pending edit always carries the newest text), and ``finish`` stops it and
hands the placeholder to ``deliver``, which turns it into the first chunk of the final reply.

Live updates are a courtesy: a failure is logged and never raised into the model's stream; a failed
placeholder closes the sink and ``deliver`` posts the reply as if there had been none. The vendor
calls should raise :class:`~botframework.errors.DeliveryError` (translated at the channel's boundary,
naming the offending ids); anything else is logged with its traceback.

:class:`LiveReplies` keeps the live replies of one adapter by turn id, bounded, so a turn that never
reaches ``deliver`` (cancelled, crashed) cannot grow it forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from botframework.errors import DeliveryError

__all__ = ["LiveReplies", "ThrottledLiveReply"]

log = logging.getLogger(__name__)

H = TypeVar("H")
"""The channel's handle of a posted placeholder (message ts / id)."""


class ThrottledLiveReply(Generic[H]):
    """A ReplySink that streams a reply into one placeholder message, editing it at most every ``interval`` s."""

    def __init__(
        self,
        *,
        post: Callable[[str], Awaitable[H | None]],
        edit: Callable[[H, str], Awaitable[None]],
        preview: Callable[[str], str],
        interval: float,
        label: str = "live reply",
    ) -> None:
        self._post_call = post
        self._edit_call = edit
        self._preview = preview
        self._interval = interval
        self._label = label
        self._text = ""
        self._notice = ""
        self._shown = ""
        self._last = 0.0
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None
        self._closed = False
        self.handle: H | None = None
        """The placeholder's handle once posted."""

    @property
    def closed(self) -> bool:
        """Finished, or the placeholder could not be posted: no more vendor calls."""
        return self._closed

    async def delta(self, text: str) -> None:
        if self._closed:
            return
        self._text += text
        self._notice = ""
        async with self._lock:
            if self.handle is None and not self._closed:
                await self._post()
                return
        self._schedule()

    async def reset(self) -> None:
        if self._closed:
            return
        self._text = ""
        self._schedule()

    async def notice(self, text: str) -> None:
        """Show a transient status (``retrying…``) after the text so far, until the next delta; it
        posts the placeholder if there is none yet, so the user does not wait in silence."""
        if self._closed:
            return
        self._notice = text
        async with self._lock:
            if self.handle is None and not self._closed:
                await self._post()
                return
        self._schedule()

    def _render(self) -> str:
        if not self._notice:
            return self._preview(self._text)
        return self._preview(f"{self._text}\n\n{self._notice}" if self._text else self._notice)

    async def finish(self) -> H | None:
        """Stop updating (a pending edit is cancelled); the placeholder's handle, if any, for ``deliver``."""
        self._closed = True
        if self._pending is not None:
            self._pending.cancel()
            await asyncio.gather(self._pending, return_exceptions=True)
        async with self._lock:
            return self.handle

    def _schedule(self) -> None:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._update_later())

    async def _update_later(self) -> None:
        await asyncio.sleep(max(0.0, self._last + self._interval - time.monotonic()))
        async with self._lock:
            if self._closed or self.handle is None:
                return
            shown = self._render()
            if shown == self._shown:
                return
            try:
                await self._edit_call(self.handle, shown)
            except Exception as exc:
                self._log_failure("update", exc)
            else:
                self._shown = shown
            self._last = time.monotonic()

    async def _post(self) -> None:
        shown = self._render()
        try:
            handle = await self._post_call(shown)
        except Exception as exc:
            self._log_failure("placeholder", exc)
            self._closed = True
            return
        if handle is None:
            log.warning("%s placeholder failed: the channel returned no message handle; live updates off", self._label)
            self._closed = True
            return
        self.handle = handle
        self._shown = shown
        self._last = time.monotonic()

    def _log_failure(self, what: str, exc: Exception) -> None:
        if isinstance(exc, DeliveryError):
            log.warning("%s %s failed: %s", self._label, what, exc)
        else:
            log.error("%s %s failed unexpectedly: %s: %s", self._label, what, type(exc).__name__, exc, exc_info=exc)


class LiveReplies(Generic[H]):
    """The live replies of one adapter by turn id; beyond ``limit`` the oldest are finished and dropped."""

    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._live: OrderedDict[str, ThrottledLiveReply[H]] = OrderedDict()
        self._evicting: set[asyncio.Task[H | None]] = set()

    def __len__(self) -> int:
        return len(self._live)

    def add(self, turn_id: str, live: ThrottledLiveReply[H]) -> None:
        """Keep ``live`` for ``deliver``; also how a failed finalize puts it back for the retry."""
        self._live[turn_id] = live
        while len(self._live) > self._limit:
            _, old = self._live.popitem(last=False)
            task = asyncio.get_running_loop().create_task(old.finish())
            self._evicting.add(task)
            task.add_done_callback(self._evicting.discard)

    def pop(self, turn_id: str) -> ThrottledLiveReply[H] | None:
        return self._live.pop(turn_id, None)

    async def close(self) -> None:
        """Finish every live reply (adapter stop)."""
        live = list(self._live.values())
        self._live.clear()
        for reply in live:
            await reply.finish()
        if self._evicting:
            await asyncio.gather(*self._evicting, return_exceptions=True)
