"""Passive replies of a WeChat Official Account: the answer travels in the callback response.

WeChat waits 5 s for the response to a message callback, then drops it and tries again with the same
``MsgId``, three tries in all (about 15 s). Any response that is not XML shows the user an error;
``success`` (or an empty body) means "no reply" and ends the tries. So for each try:

1. The message is stored first (a retry is a duplicate of the same turn, never a second turn).
2. The try waits, up to ``passive_wait_s``, for the turn's reply (the core holds it: it never goes
   through the customer-service API in this mode).
3. If it is ready, the try takes it, together with any answer kept from the user's earlier messages,
   and returns it as the text reply (encrypted in safe mode). Taking is an atomic claim, so
   concurrent requests never hand out the same text twice.
4. If not, the try stays silent: answering would end WeChat's tries. When WeChat's next try arrives,
   the older one steps aside and answers ``success`` into a connection WeChat has already given up.
   The last try stops waiting in time to hand out answers kept from earlier messages, if any.
5. An answer slower than all tries is kept and goes out as the reply to the user's next message,
   before that message's own answer (or alone, if that one is slow too).

One reply holds 2,048 bytes. A longer answer goes out in parts, one per user message, each ending
with ``continue_hint``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from botframework.channel import ChannelRuntime, Outbound, ReplyClaim
from botframework.render import ChannelLimit, render_chunks
from botframework.turn import Turn
from channels.wechat.render import LIMIT

__all__ = ["Attempt", "PassiveReplies", "Tries"]

log = logging.getLogger(__name__)

_SEPARATOR = "\n\n"
_CLAIM_ROUNDS = 3
_EMPTY = "(empty reply)"


@dataclass(eq=False)
class Attempt:
    """One try of a message callback; ``superseded`` is set when WeChat's next try of it arrives."""

    msg_id: str
    number: int
    superseded: asyncio.Event = field(default_factory=asyncio.Event)


class Tries:
    """WeChat's tries per ``MsgId`` in this process (bounded: the oldest ids are forgotten)."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._live: dict[str, list[Attempt]] = {}

    def arrive(self, msg_id: str) -> Attempt:
        """A new try of ``msg_id``: every earlier try of it still waiting is superseded."""
        number = self._counts.pop(msg_id, 0) + 1
        self._counts[msg_id] = number
        while len(self._counts) > self._limit:
            self._counts.popitem(last=False)
        for earlier in self._live.get(msg_id, ()):
            earlier.superseded.set()
        attempt = Attempt(msg_id=msg_id, number=number)
        self._live.setdefault(msg_id, []).append(attempt)
        return attempt

    def leave(self, attempt: Attempt) -> None:
        live = self._live.get(attempt.msg_id, [])
        if attempt in live:
            live.remove(attempt)
        if not live:
            self._live.pop(attempt.msg_id, None)


@dataclass(frozen=True)
class _Taken:
    text: str
    claims: list[ReplyClaim]


class PassiveReplies:
    """Decides what each callback try answers (see the module docstring)."""

    def __init__(
        self,
        *,
        runtime: ChannelRuntime,
        tenant: str,
        channel: str,
        render: Callable[[str], str],
        wait_s: float,
        tries: int,
        continue_hint: str,
        hold_s: float = 10.0,
    ) -> None:
        self._runtime = runtime
        self._tenant = tenant
        self._channel = channel
        self._render = render
        self._wait_s = wait_s
        self._last_try = tries
        self._hint = continue_hint.strip()
        self._hold_s = hold_s
        hint_bytes = len(self._hint.encode("utf-8")) + len(_SEPARATOR) if self._hint else 0
        self._part_limit = ChannelLimit(LIMIT.size - hint_bytes, "bytes") if LIMIT.size else LIMIT
        self.tries = Tries()

    async def answer(self, turn: Turn) -> str | None:
        """The text to reply to this try of ``turn``'s message, or None to answer ``success``."""
        attempt = self.tries.arrive(turn.event_id)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._wait_s
            if await self._ready_or_superseded(turn, attempt, deadline - loop.time()):
                return None if attempt.superseded.is_set() else await self._take(turn.conversation_key)
            if attempt.number >= self._last_try:
                return await self._take(turn.conversation_key)  # earlier answers kept for this user, if any
            # Stay silent: WeChat gives this try up at 5 s and sends the next, which takes over.
            await _wait_event(attempt.superseded, self._hold_s)
            return None
        finally:
            self.tries.leave(attempt)

    async def _ready_or_superseded(self, turn: Turn, attempt: Attempt, timeout: float) -> bool:
        """True when the reply is recorded or a newer try arrived within ``timeout``."""
        ready = asyncio.ensure_future(
            self._runtime.wait_reply(self._tenant, self._channel, turn.event_id, timeout=max(0.0, timeout))
        )
        newer = asyncio.ensure_future(attempt.superseded.wait())
        try:
            await asyncio.wait({ready, newer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ready, newer):
                if not task.done():
                    task.cancel()
            await asyncio.gather(ready, newer, return_exceptions=True)
        return attempt.superseded.is_set() or (ready.done() and not ready.cancelled() and ready.result() is True)

    async def _take(self, conversation_key: str) -> str | None:
        """Claim as much of the conversation's held answers as one reply holds; their text, or None."""
        for _ in range(_CLAIM_ROUNDS):
            held = await self._runtime.held_replies(self._tenant, self._channel, conversation_key)
            taken = self._compose(held)
            if taken is None:
                return None
            if await self._runtime.claim_replies(taken.claims):
                return taken.text
        log.warning(
            "wechat tenant %s: passive reply to %s lost %d claim races in a row; answering 'success'",
            self._tenant,
            conversation_key,
            _CLAIM_ROUNDS,
        )
        return None

    def _compose(self, held: list[Outbound]) -> _Taken | None:
        """Whole parts of the held answers, oldest first, as many as fit in one reply."""
        limit = self._part_limit.size or 0
        pieces: list[str] = []
        used = 0
        claims: list[ReplyClaim] = []
        more = False
        for outbound in held:
            parts = render_chunks(outbound.reply.text, self._render, self._part_limit) or [self._render(_EMPTY)]
            remaining = parts[outbound.resume_from :]
            if not remaining:
                continue
            if more:
                break  # the reply is full; this answer waits for the next message too
            count = 0
            for part in remaining:
                size = len(part.encode("utf-8")) + (len(_SEPARATOR) if pieces else 0)
                if pieces and used + size > limit:
                    break
                pieces.append(part)
                used += size
                count += 1
            if count:
                done = outbound.resume_from + count == len(parts)
                claims.append(ReplyClaim(outbound=outbound, parts=count, complete=done))
            if count < len(remaining):
                more = True
        if not claims:
            return None
        text = _SEPARATOR.join(pieces)
        if more and self._hint:
            text = f"{text}{_SEPARATOR}{self._hint}"
        return _Taken(text=text, claims=claims)


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
