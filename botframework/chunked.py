"""Delivery for channels that send a reply as messages: chunking, resume, live placeholders, errors.

Most vendors take one message per API call. What differs between them is two or three calls —
send a message, and optionally post and edit a placeholder — and how their SDK reports failures.
Everything else is the same for all of them and lives here, once:

- the reply is rendered in the channel's dialect and chunked under its ``message_limit``;
- a retry resumes after the parts an earlier attempt delivered (``Outbound.resume_from``), so no
  text is repeated;
- with live updates, the first streamed text posts a placeholder which is edited, throttled, while
  the answer is produced (:mod:`botframework.live`), and becomes the first part of the final reply;
  a placeholder that cannot be finalized for good is left and the reply is sent as new messages;
- each part is recorded as in flight before its vendor call and as sent after it (``Outbound.journal``);
  a part found in flight after a crash is first looked for at the vendor (:meth:`ChunkedAdapter.already_delivered`),
  and otherwise sent again with the same idempotency key (``Outbound.part_key``), which the channel puts
  where its vendor dedupes;
- vendor exceptions become :class:`~botframework.errors.DeliveryError` through the channel's one
  table (:data:`ChunkedAdapter.delivery_errors`), with the number of parts already delivered.

A channel subclasses :class:`ChunkedAdapter`, declares its ``target_model`` (a
:class:`~botframework.turn.ReplyTarget`), implements :meth:`~ChunkedAdapter.send_part`, and, for live
updates, :meth:`~ChunkedAdapter.post_placeholder` and :meth:`~ChunkedAdapter.edit_placeholder`.
Its inbound handler calls :meth:`~ChunkedAdapter.accept` instead of ``runtime.ingest``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from botframework.channel import C, ChannelAdapter, ChannelRuntime, EventRef, IngestResult, Outbound
from botframework.errors import DeliveryError, StorageError
from botframework.limits import Refusal
from botframework.live import LiveReplies, ThrottledLiveReply
from botframework.turn import Reply, ReplyTarget, Turn

__all__ = ["ChunkedAdapter", "VendorError", "map_delivery_errors"]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=ReplyTarget)
"""The channel's reply target."""
H = TypeVar("H")
"""The channel's handle of a posted placeholder (a message ts or id)."""

_UNFINISHED = "…"
_NOTICE_EVERY_S = 60.0


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class VendorError:
    """How one vendor exception type becomes a DeliveryError: whether trying later may help, what the
    message says (it should carry the vendor's own code and status), and how long the vendor asked us
    to wait (``retry_after``, e.g. a 429's), when it says so."""

    kind: type[BaseException]
    retryable: bool | Callable[[Any], bool] = True
    detail: Callable[[Any], str] = _describe
    retry_after: Callable[[Any], float | None] | None = None


@contextmanager
def map_delivery_errors(table: Sequence[VendorError], *, what: str, delivered_parts: int = 0) -> Iterator[None]:
    """Translate the first matching vendor exception into a DeliveryError ``from`` it.

    A DeliveryError raised inside (the channel's own checks) passes through, with ``delivered_parts``
    raised to at least the given count; an exception no rule matches propagates unchanged.
    """
    try:
        yield
    except DeliveryError as exc:
        exc.delivered_parts = max(exc.delivered_parts, delivered_parts)
        raise
    except Exception as exc:
        for rule in table:
            if isinstance(exc, rule.kind):
                retryable = rule.retryable if isinstance(rule.retryable, bool) else rule.retryable(exc)
                raise DeliveryError(
                    f"{what} failed: {rule.detail(exc)}",
                    retryable=retryable,
                    delivered_parts=delivered_parts,
                    retry_after_s=rule.retry_after(exc) if rule.retry_after is not None else None,
                ) from exc
        raise


class ChunkedAdapter(ChannelAdapter[C], Generic[C, T, H]):
    """A channel whose replies go out as one vendor message per chunk (see the module docstring)."""

    target_model: ClassVar[type[ReplyTarget]]
    """The typed reply target ``send_part`` receives, parsed from the stored ``reply_target``."""
    delivery_errors: ClassVar[Sequence[VendorError]] = ()
    """The channel's one table from vendor/SDK exceptions to DeliveryError."""
    live_reply_limit: ClassVar[int] = 1024
    """Live replies kept at once; beyond it the oldest are finished (turns that never delivered)."""

    def __init__(self, *, tenant: str, config: C, runtime: ChannelRuntime) -> None:
        super().__init__(tenant=tenant, config=config, runtime=runtime)
        self.live_interval_s: float | None = None
        """Seconds between placeholder edits; None (the default) turns live updates off."""
        self._live: LiveReplies[H] = LiveReplies(self.live_reply_limit)
        self._refusals_told: dict[tuple[str, str], float] = {}
        self._notices: set[asyncio.Task[None]] = set()

    # -- what a channel implements ---------------------------------------------------------

    async def send_part(self, target: T, text: str, *, index: int, outbound: Outbound) -> None:
        """Send one rendered part of a reply (``index`` 0 is the first)."""
        raise NotImplementedError

    async def already_delivered(self, target: T, text: str, *, index: int, outbound: Outbound) -> bool:
        """Whether part ``index`` (``outbound.in_flight``: an earlier attempt died sending it) already
        reached the vendor. Only channels whose vendor lets the bot read what it posted can tell, by
        the marker ``send_part`` attached (``outbound.part_key(index)``); the default, False, resends
        it and relies on the vendor's own dedupe of that key, where there is one."""
        return False

    async def post_placeholder(self, target: T, text: str) -> H | None:
        """Post the live placeholder showing ``text``; its handle, or None if the vendor gave none."""
        raise NotImplementedError(f"the {self.name} channel has no live updates")

    async def edit_placeholder(self, target: T, handle: H, text: str) -> None:
        """Replace the placeholder's content with ``text`` (a preview, or the first part at the end)."""
        raise NotImplementedError(f"the {self.name} channel has no live updates")

    def preview(self, text: str) -> str:
        """What the placeholder shows while the reply is produced: its first part, marked unfinished.

        Only the head of the text can reach the first part, so only the head is rendered: an edit
        costs the same whether the answer so far is 1 KB or 100 KB.
        """
        size = self.message_limit.size
        head = text if size is None else text[: 2 * size]
        parts = self.render_reply(head) if head.strip() else []
        if not parts:
            return self.render(_UNFINISHED)
        first = parts[0]
        fits = size is None or len(first.encode() if self.message_limit.unit == "bytes" else first) + 4 <= size
        if len(parts) > 1 or len(head) < len(text) or not fits:
            return first
        return f"{first} {_UNFINISHED}"

    # -- what the core does ----------------------------------------------------------------

    def parse_target(self, raw: Mapping[str, Any] | BaseModel, *, turn_id: str) -> T:
        """The stored reply target as the channel's ``target_model``; a bad one is not retryable."""
        if isinstance(raw, self.target_model):
            return raw  # type: ignore[return-value]
        try:
            return self.target_model.model_validate(dict(raw))  # type: ignore[return-value]
        except (ValidationError, TypeError, ValueError) as exc:
            raise DeliveryError(
                f"{self.name} reply for turn {turn_id} has a bad reply target {raw!r}: {exc}", retryable=False
            ) from exc

    async def accept(self, turn: Turn) -> IngestResult:
        """Ingest ``turn`` (raises if it could not be stored: do not acknowledge then) and, when live
        updates are on, stream its reply into a placeholder. A message a limit refused is acknowledged
        all the same (a vendor retry would be refused again); its sender is told why, in the background
        and at most once a minute per conversation and limit."""
        result = await self.runtime.ingest(turn)
        if result.refusal is not None:
            self._notify_refusal(turn, result.refusal)
            return result
        if not result.duplicate and self.live_interval_s is not None:
            self._start_live(result.turn_id, self.parse_target(turn.target, turn_id=result.turn_id))
        return result

    def _notify_refusal(self, turn: Turn, refusal: Refusal) -> None:
        now = time.monotonic()
        key = (turn.conversation_key, refusal.kind)
        if now - self._refusals_told.get(key, -_NOTICE_EVERY_S) < _NOTICE_EVERY_S:
            return
        if len(self._refusals_told) > 10_000:
            self._refusals_told.clear()
        self._refusals_told[key] = now
        outbound = Outbound(
            tenant=self.tenant,
            channel=self.name,
            turn_id=f"refused-{turn.event_id}",
            conversation_key=turn.conversation_key,
            reply=Reply(text=refusal.message),
            events=[EventRef(event_id=turn.event_id, user_id=turn.user_id, reply_target=turn.target)],
        )

        async def tell() -> None:
            try:
                await self.deliver(outbound)
            except Exception as exc:
                log.warning(
                    "%s: could not tell %s why its message was refused (%s): %s",
                    self.name,
                    turn.user_id,
                    refusal.kind,
                    exc,
                )

        task = asyncio.create_task(tell())
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    def _start_live(self, turn_id: str, target: T) -> None:
        what = f"{self.name} live reply of turn {turn_id} to {target}"

        async def post(text: str) -> H | None:
            with map_delivery_errors(self.delivery_errors, what=f"{what}: placeholder"):
                return await self.post_placeholder(target, text)

        async def edit(handle: H, text: str) -> None:
            with map_delivery_errors(self.delivery_errors, what=f"{what}: update"):
                await self.edit_placeholder(target, handle, text)

        assert self.live_interval_s is not None
        live: ThrottledLiveReply[H] = ThrottledLiveReply(
            post=post, edit=edit, preview=self.preview, interval=self.live_interval_s, label=what
        )
        self._live.add(turn_id, live)
        self.runtime.attach_sink(self.tenant, self.name, turn_id, live)

    async def deliver(self, outbound: Outbound) -> None:
        target = self.parse_target(outbound.primary.reply_target, turn_id=outbound.turn_id)
        parts = self.render_reply(outbound.reply.text)
        live = self._live.pop(outbound.turn_id)
        placeholder = await live.finish() if live is not None else None
        for index, part in enumerate(parts):
            if index < outbound.resume_from:
                continue  # an earlier attempt delivered it
            what = (
                f"{self.name} reply of turn {outbound.turn_id} to {target} "
                f"(chunk {index + 1}/{len(parts)}; {index} already sent)"
            )
            if index == 0 and placeholder is not None:
                assert live is not None
                try:
                    with map_delivery_errors(self.delivery_errors, what=f"{what}: finalizing the placeholder"):
                        await self.edit_placeholder(target, placeholder, part)
                    await self.record_part(outbound, index, sent=True, what=what)
                    continue
                except DeliveryError as error:
                    if error.retryable:
                        self._live.add(outbound.turn_id, live)  # the retry finalizes the same placeholder
                        raise
                    log.warning("%s; sending the reply as new messages instead", error)
            if outbound.uncertain(index) and await self._arrived(target, part, index=index, outbound=outbound):
                log.info("%s: found at the vendor after an interrupted attempt; not sent again", what)
                await self.record_part(outbound, index, sent=True, what=what)
                continue
            await self.record_part(outbound, index, sent=False, what=what)
            with map_delivery_errors(self.delivery_errors, what=what, delivered_parts=index):
                await self.send_part(target, part, index=index, outbound=outbound)
            await self.record_part(outbound, index, sent=True, what=what)

    async def _arrived(self, target: T, text: str, *, index: int, outbound: Outbound) -> bool:
        """Ask the vendor about an in-flight part. A check that may work later (a rate limit, an
        outage) fails the attempt as retryable, so nothing is sent blind; one that cannot work (a
        missing permission) means "not known to have arrived" and the part is sent again."""
        what = f"{self.name} reply of turn {outbound.turn_id}: checking whether part {index + 1} arrived"
        try:
            with map_delivery_errors(self.delivery_errors, what=what, delivered_parts=index):
                return await self.already_delivered(target, text, index=index, outbound=outbound)
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning(
                "%s: could not check whether part %d of turn %s arrived before (%s); sending it again "
                "(the vendor's dedupe, where it has one, drops a repeat)",
                self.name,
                index,
                outbound.turn_id,
                exc,
            )
            return False

    @staticmethod
    async def record_part(outbound: Outbound, index: int, *, sent: bool, what: str) -> None:
        """Record part ``index`` in flight (before its vendor call) or sent (after); an adapter that
        overrides :meth:`deliver` calls it around each vendor call the same way. A record that
        cannot be written stops the delivery as retryable: sending without it could repeat the part."""
        if outbound.journal is None:
            return
        try:
            if sent:
                await outbound.journal.sent(index)
            else:
                await outbound.journal.sending(index)
        except StorageError as exc:
            state = "sent" if sent else "in flight"
            raise DeliveryError(
                f"{what}: could not record the part as {state}: {exc}",
                retryable=True,
                delivered_parts=index + 1 if sent else index,
            ) from exc

    async def stop(self) -> None:
        for task in list(self._notices):
            task.cancel()
        await self._live.close()
