"""Held replies: the reply of a turn handed out by its adapter, in its answer to a vendor request.

Most channels send a reply when it is ready (``deliver``). A few can only answer inside the HTTP
response to a request the vendor makes: a callback that must be answered within seconds, tried a
few times, with no API to send anything later. For an adapter whose
:attr:`~botframework.channel.ChannelAdapter.holds_replies` is true the core records each reply as a
pending delivery as usual but does not send it; the adapter

- waits, bounded, for the reply of the message it just ingested (:meth:`HeldReplies.wait`),
- reads what is held for the conversation (:meth:`HeldReplies.held`, oldest first), and
- claims the parts it puts in its response (:meth:`HeldReplies.claim`): a conditional update, all
  claims of one call in one transaction, so two requests never both hand out the same part.

Waiting is woken in-process the moment the reply is recorded (the runtime's turn waiters, which
follow a message steered into another turn) and re-checks the database every ``poll_s``, so it also
sees replies recorded by another process. A claimed part counts as delivered: the response carrying
it may still be lost on the way, as any vendor call may be, but it is never handed out twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from botframework.channel import EventRef, Outbound, ReplyClaim
from botframework.metrics import Metrics
from botframework.turn import Reply
from storage.db import Database
from storage.deliveries import pending_deliveries
from storage.held_replies import claim_delivery_parts, reply_recorded_for_event
from storage.turns import events_of_turn

__all__ = ["HeldReplies"]


class HeldReplies:
    """The runtime's side of held replies (see the module docstring)."""

    poll_s: float = 0.5
    """How often a wait re-reads the database (replies recorded by another process)."""

    def __init__(
        self,
        *,
        db: Database,
        waiters: dict[str, list[asyncio.Future[Reply]]],
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._waiters = waiters
        self._metrics = metrics
        self._clock = clock

    async def wait(self, tenant: str, channel: str, event_id: str, *, timeout: float) -> bool:
        """True once the reply answering ``event_id`` is recorded; False after ``timeout`` seconds."""
        deadline = self._clock() + max(0.0, timeout)
        loop = asyncio.get_running_loop()
        while True:
            async with self._db.read() as conn:
                found = await reply_recorded_for_event(conn, tenant=tenant, channel=channel, event_id=event_id)
            if found is None:
                return False
            turn_id, recorded = found
            if recorded:
                return True
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            future: asyncio.Future[Reply] = loop.create_future()
            self._waiters[turn_id].append(future)
            try:
                # Registered after the read: a reply recorded in between wakes us at the next poll.
                async with asyncio.timeout(min(remaining, self.poll_s)):
                    await future
            except TimeoutError:
                pass
            finally:
                for key, waiting in list(self._waiters.items()):
                    if future in waiting:
                        waiting.remove(future)
                        if not waiting:
                            del self._waiters[key]
                        break
                future.cancel()

    async def held(self, tenant: str, channel: str, conversation_key: str) -> list[Outbound]:
        """The conversation's replies not yet handed out, oldest first (``resume_from``: parts already out)."""
        async with self._db.read() as conn:
            pending = await pending_deliveries(conn, tenant=tenant, channel=channel, conversation_key=conversation_key)
            out = []
            for d in pending:
                events = await events_of_turn(conn, d.turn_id)
                out.append(
                    Outbound(
                        tenant=d.tenant,
                        channel=d.channel,
                        turn_id=d.turn_id,
                        conversation_key=d.conversation_key,
                        reply=d.reply,
                        resume_from=d.progress,
                        events=[
                            EventRef(event_id=e.event_id, user_id=e.user_id, reply_target=e.reply_target)
                            for e in events
                        ],
                    )
                )
        return out

    async def claim(self, claims: Sequence[ReplyClaim]) -> bool:
        """Take every claim or none: False when another request advanced one of these replies first."""
        if not claims:
            return True
        for claim in claims:
            if claim.parts < 1:
                raise ValueError(f"a claim on turn {claim.outbound.turn_id} must take at least one part")

        class _Lost(Exception):
            pass

        try:
            async with self._db.write() as conn:
                for claim in claims:
                    won = await claim_delivery_parts(
                        conn,
                        turn_id=claim.outbound.turn_id,
                        expected_progress=claim.outbound.resume_from,
                        parts=claim.parts,
                        complete=claim.complete,
                    )
                    if not won:
                        raise _Lost  # rolls back the claims made so far in this call
        except _Lost:
            return False
        for claim in claims:
            if claim.complete:
                self._metrics.deliveries.labels(claim.outbound.channel, "sent").inc()
        return True
