"""The contract every channel implements, and what the core gives it.

A channel is a plugin: a distribution registers its adapter class under the entry-point group
``botframework.channels`` (the entry-point name is the key under ``tenants.*.channels``), exactly
as the channels shipped with botframework do. The class declares its ``name`` and ``config_model``
(the pydantic model of its options); the core builds one instance per tenant that enables it as
``Adapter(tenant=..., config=<config_model instance>, runtime=...)``.

An adapter only translates: a verified vendor payload becomes a :class:`~botframework.turn.Turn`
handed to :meth:`ChannelRuntime.ingest`; an :class:`Outbound` reply becomes vendor API calls.
Dedupe, persistence, ordering, budgeting, models, chunking, live updates and retries of delivery
live in the core (see :class:`botframework.chunked.ChunkedAdapter` for the delivery half).

Every channel package has the same shape::

    <package>/__init__.py   exports the adapter class
    <package>/adapter.py    ChannelAdapter subclass: routes or connection, vendor send calls
    <package>/config.py     the channel's options (pydantic, a docstring per field)
    <package>/events.py     vendor payload -> Turn (pure functions, tested on recorded fixtures)
    <package>/crypto.py     signature / decryption, only when no library verifies
    <package>/render.py     its Markdown dialect and message limit
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from aiohttp import web
from pydantic import BaseModel

from botframework.channel_login import LoginConsole
from botframework.channel_state import ChannelState
from botframework.errors import LoginError, MediaError
from botframework.health import ChannelHealth
from botframework.limits import Refusal
from botframework.render import UNLIMITED, ChannelLimit, render_chunks
from botframework.turn import Reply, ReplySink, Turn

__all__ = [
    "PART_KEY_LENGTH",
    "ChannelAdapter",
    "ChannelHealth",
    "ChannelRuntime",
    "ChannelState",
    "EventRef",
    "InFlightPart",
    "IngestResult",
    "IngestStatus",
    "Outbound",
    "PartJournal",
    "ReplyClaim",
    "Route",
    "part_key",
]


class IngestStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    """Not stored: a limit (input length, queue depth, quota) refused it; ``refusal`` says which."""


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    status: IngestStatus
    turn_id: str
    conversation_id: int
    refusal: Refusal | None = None
    """Why a REFUSED message was not stored, with the text to show its sender."""

    @property
    def duplicate(self) -> bool:
        return self.status is IngestStatus.DUPLICATE

    @property
    def refused(self) -> bool:
        return self.status is IngestStatus.REFUSED


@dataclass(frozen=True, kw_only=True)
class EventRef:
    """One user message a reply answers, with what the adapter stored to reach its sender."""

    event_id: str
    user_id: str
    reply_target: Mapping[str, Any]


PART_KEY_LENGTH = 24
"""Characters of :meth:`Outbound.part_key`: lowercase hex, short enough for every vendor's idempotency
field (Discord's ``nonce`` takes at most 25, Feishu's ``uuid`` 50)."""


def part_key(*, tenant: str, channel: str, turn_id: str, index: int) -> str:
    """The idempotency key of part ``index`` of a turn's reply (see :meth:`Outbound.part_key`)."""
    seed = f"{tenant}\x00{channel}\x00{turn_id}\x00{index}".encode()
    return hashlib.sha256(seed).hexdigest()[:PART_KEY_LENGTH]


class PartJournal(Protocol):
    """Where the core records each part of a reply around its vendor call, so a crash between the
    vendor accepting a part and the core recording it is known after a restart (see ``in_flight``)."""

    async def sending(self, index: int) -> None:
        """Part ``index`` is about to be handed to the vendor; its outcome is unknown until :meth:`sent`."""

    async def sent(self, index: int) -> None:
        """The vendor accepted part ``index``: a retry resumes after it."""


@dataclass(frozen=True, kw_only=True)
class InFlightPart:
    """A part an earlier attempt handed to the vendor without learning whether it arrived (a crash, a
    timeout). Before sending it again the adapter may ask the vendor, or rely on the vendor's dedupe."""

    index: int
    since: datetime
    """When that attempt began (the core's clock): what the vendor holds from before cannot be it."""


@dataclass(frozen=True, kw_only=True)
class Outbound:
    """A finished reply to deliver. ``events[0]`` started the turn; later ones were steered into it."""

    tenant: str
    channel: str
    turn_id: str
    conversation_key: str
    reply: Reply
    events: Sequence[EventRef]
    resume_from: int = 0
    """Parts (chunks) an earlier attempt already delivered: skip them, so a retry never repeats text."""
    in_flight: InFlightPart | None = None
    """The part (index ``resume_from``) an earlier attempt may or may not have delivered."""
    journal: PartJournal | None = None
    """Records each part as in flight before its vendor call and as sent after (None: not recorded)."""

    @property
    def primary(self) -> EventRef:
        return self.events[0]

    def part_key(self, index: int) -> str:
        """The idempotency key of part ``index`` of this reply: the same on every attempt and in every
        process, different for every other part and reply. Adapters put it where their vendor dedupes
        (a ``uuid``, a ``nonce``, a metadata marker); it is :data:`PART_KEY_LENGTH` hex characters."""
        return part_key(tenant=self.tenant, channel=self.channel, turn_id=self.turn_id, index=index)

    def uncertain(self, index: int) -> bool:
        """Whether part ``index`` may already have reached the vendor (an attempt died mid-send)."""
        return self.in_flight is not None and self.in_flight.index == index


@dataclass(frozen=True, kw_only=True)
class ReplyClaim:
    """Parts of a held reply (see :attr:`ChannelAdapter.holds_replies`) an adapter hands out itself now."""

    outbound: Outbound
    """The held reply as :meth:`ChannelRuntime.held_replies` returned it (``resume_from``: parts already out)."""
    parts: int
    """How many parts after ``outbound.resume_from`` go out now (at least 1)."""
    complete: bool
    """Whether those are the last parts: the reply is then sent; otherwise it stays held for the rest."""


@dataclass(frozen=True, kw_only=True)
class Route:
    """An HTTP route below ``/t/{tenant}/``; the server resolves the tenant and calls the handler."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]


class ChannelRuntime(Protocol):
    """What the core offers an adapter."""

    async def ingest(self, turn: Turn) -> IngestResult:
        """Dedupe, persist the user message, schedule its processing. Return before the model runs."""

    async def has_conversation(self, tenant: str, channel: str, conversation_key: str) -> bool:
        """Whether the bot already takes part in this conversation (e.g. a Slack thread it answered)."""

    async def transcript(
        self, tenant: str, channel: str, conversation_key: str, *, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Recent user/assistant texts of a conversation, oldest first: ``{role, text, event_id}``."""

    def attach_sink(self, tenant: str, channel: str, turn_id: str, sink: ReplySink) -> None:
        """Stream the reply of ``turn_id`` into ``sink`` while it is produced (live channels)."""

    async def redeliver(self, tenant: str, channel: str, conversation_key: str) -> int:
        """Try again to deliver pending replies of a conversation (e.g. a client reconnected)."""

    async def acknowledge(self, tenant: str, channel: str, event_id: str) -> bool:
        """The client confirmed it has the reply to ``event_id``: never send it again (a reconnect,
        a restart). False when no such message was stored."""

    async def cancel(self, tenant: str, channel: str, event_id: str, *, conversation_key: str | None = None) -> bool:
        """Cancel the turn answering ``event_id``; False if it already finished, or, with
        ``conversation_key``, if the event belongs to another conversation (someone else's turn)."""

    async def check_replay(
        self, *, tenant: str, channel: str, timestamp: str, nonce: str, body: bytes, window_s: int
    ) -> None:
        """After a webhook's signature verified: raise SignatureError if the request is stale or its
        (timestamp, nonce) was accepted before with another body (see :mod:`botframework.replay`)."""

    async def deployment_key(self, name: str) -> bytes:
        """A random 32-byte key shared by every process of the deployment, created on first use."""

    def channel_state(self, tenant: str, channel: str) -> ChannelState:
        """The persistent key/value state of one (tenant, channel): sessions, cursors."""

    async def wait_reply(self, tenant: str, channel: str, event_id: str, *, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the reply answering ``event_id`` is recorded; False if not yet."""

    async def held_replies(self, tenant: str, channel: str, conversation_key: str) -> list[Outbound]:
        """Replies of a conversation that a reply-holding adapter has not handed out yet, oldest first."""

    async def claim_replies(self, claims: Sequence[ReplyClaim]) -> bool:
        """Take parts of held replies for the adapter to hand out itself: all of them, or none and False
        when another request took one first. A claimed part counts as delivered."""


C = TypeVar("C", bound=BaseModel)
"""The channel's options model."""


class ChannelAdapter(ABC, Generic[C]):
    """Base class of every channel adapter; one instance per (tenant, channel)."""

    name: ClassVar[str]
    """The channel's key under ``tenants.*.channels`` (its entry-point name) and in its routes."""
    config_model: ClassVar[type[BaseModel]]
    """Validates the channel's YAML section; the instance is passed to the constructor as ``config``."""
    message_limit: ClassVar[ChannelLimit] = UNLIMITED
    """The most one message may carry; replies are chunked to fit (characters or UTF-8 bytes)."""
    empty_reply: ClassVar[str] = "(empty reply)"
    """Sent instead of an empty reply (vendors refuse empty messages)."""
    replies_on_connection: ClassVar[bool] = False
    """Replies go out on a client connection held by the process that accepted the message (a
    socket), not through a vendor API any process can call: with several processes, the worker that
    ran the turn hands the stored reply to the processes holding connections."""
    supports_login: ClassVar[bool] = False
    """Whether :meth:`login` is implemented (``botframework login <channel>``)."""
    image_hosts: ClassVar[tuple[str, ...]] = ()
    """The vendor's public image CDN hosts (``cdn.example.com`` or ``*.example.com``): an ``https``
    image URL on one of them is passed to the model as-is; any other URL is fetched by the core
    through its guarded fetcher (:mod:`botframework.netguard`), or dropped."""

    def __init__(self, *, tenant: str, config: C, runtime: ChannelRuntime) -> None:
        if not isinstance(config, self.config_model):
            raise TypeError(f"{type(self).__name__} needs a {self.config_model.__name__}, got {type(config).__name__}")
        self.tenant = tenant
        self.config: C = config
        self.runtime = runtime

    def render(self, markdown: str) -> str:
        """The channel's Markdown dialect, applied to one chunk; by default the Markdown as written."""
        return markdown

    def render_reply(self, text: str) -> list[str]:
        """The messages a reply becomes, in order: each rendered and within ``message_limit``; never empty."""
        return render_chunks(text, self.render, self.message_limit) or [self.render(self.empty_reply)]

    def routes(self) -> Sequence[Route]:
        """HTTP routes this channel serves under ``/t/{tenant}/``; gateway clients have none."""
        return ()

    def pages(self) -> Sequence[tuple[str, str]]:
        """Pages a person opens in a browser, as (what it is, path below ``/t/{tenant}/``), for the
        start banner; each path is also one of :meth:`routes`."""
        return ()

    async def start(self) -> None:
        """Open outgoing connections (gateway clients, socket mode). Must not block."""
        return None

    async def stop(self) -> None:
        """Close connections; called once at shutdown."""
        return None

    @property
    def holds_gateway(self) -> bool:
        """True when :meth:`start` opens a long-lived outgoing connection (a gateway, socket mode, a
        long poll) that the vendor allows once per bot: with several processes only the holder of the
        channel's lease starts the adapter, and replies on this channel are sent by that process."""
        return False

    @property
    def holds_replies(self) -> bool:
        """True when the adapter hands replies out itself, in its answer to a later vendor request (a
        callback response): the core then records each reply as pending and never calls :meth:`deliver`;
        the adapter waits for it (:meth:`ChannelRuntime.wait_reply`) and takes it
        (:meth:`ChannelRuntime.claim_replies`), so a reply goes out exactly once, never by both paths."""
        return False

    def health(self) -> ChannelHealth:
        """The state of the channel's own connection or session (``/healthz``, ``/metrics``); up by default."""
        return ChannelHealth.up()

    @classmethod
    async def login(cls, *, tenant: str, config: BaseModel, state: ChannelState, console: LoginConsole) -> None:
        """Authorize the bot interactively and keep the session in ``state`` (set ``supports_login``).
        Raise LoginError when it does not complete."""
        raise LoginError(f"the {cls.name} channel has no login step; its credentials go in the config file")

    @classmethod
    async def probe(cls, *, tenant: str, config: BaseModel, state: ChannelState) -> ChannelHealth:
        """What can be known about the channel before it starts (``check-config --probe``) without
        disturbing a running server (never take over its connection)."""
        return ChannelHealth.up()

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """Bytes and media type of an image this adapter referenced as ``media_ref(name, ref)``
        (one the model provider cannot fetch itself). Raise MediaError when it cannot be had."""
        raise MediaError(f"the {self.name} channel does not serve media (ref {ref!r})")

    @abstractmethod
    async def deliver(self, outbound: Outbound) -> None:
        """Render and send a finished reply. Raise DeliveryError(retryable=...) on failure."""
