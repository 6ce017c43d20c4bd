"""Harnesses for adapter conformance tests.

``BotHarness`` runs the real runtime and HTTP app in-process (port 0) for one tenant with one
channel and a :class:`ScriptedModel`. A channel's test provides a ``ChannelHarness``: how to send a
genuine and a forged inbound event, and what its fake vendor API received.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from botframework.channel import ChannelAdapter
from botframework.config.schema import Config
from botframework.messages import Message
from botframework.runtime import Runtime
from botframework.server import build_app
from botframework.testing.scripted_model import ScriptedModel
from botframework.turn import Turn
from storage.conversations import append_messages, get_or_create_conversation
from storage.tables import Delivery, InboundEvent, MessageRow, TurnRow

__all__ = ["AdapterClient", "BotHarness", "ChannelHarness", "RecordedCase", "serve_adapter", "wait_until"]

TENANT = "conf"


async def wait_until(check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``check`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


AdapterClient = TestClient[web.Request, web.Application]


@asynccontextmanager
async def serve_adapter(adapter: ChannelAdapter[Any]) -> AsyncIterator[AdapterClient]:
    """Mount one adapter's routes below ``/t/{tenant}/`` as the server does, started; for unit tests
    that talk to an adapter over HTTP without the rest of the runtime."""
    app = web.Application()
    for route in adapter.routes():
        app.router.add_route(route.method, f"/t/{{tenant}}/{route.path}", route.handler)
    await adapter.start()
    try:
        async with TestClient(TestServer(app)) as client:
            yield client
    finally:
        await adapter.stop()


@dataclass(frozen=True, kw_only=True)
class RecordedCase:
    """A recorded vendor payload and the Turn fields it must produce (``expected=None``: ignored)."""

    name: str
    parse: Callable[[], Turn | None]
    expected: Mapping[str, Any] | None


class BotHarness:
    """The real runtime + app for tenant ``conf`` with one channel, served on 127.0.0.1:0."""

    def __init__(
        self,
        *,
        channel: str,
        channel_config: Mapping[str, Any],
        db_url: str,
        context_window: int = 4096,
        max_output_tokens: int = 512,
        tenant_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``tenant_options`` adds keys to the tenant's section (e.g. ``{"limits": {...}}``)."""
        self.tenant = TENANT
        self.channel = channel
        self.config = Config.model_validate(
            {
                "storage": {"url": db_url},
                "models": {
                    "main": {
                        "provider": "offline",
                        "model": "scripted",
                        "context_window": context_window,
                        "max_output_tokens": max_output_tokens,
                    }
                },
                "tenants": {
                    TENANT: {
                        "agent": {"model": "main", "system_prompt": "You are a test bot."},
                        "channels": {channel: dict(channel_config)},
                        **(tenant_options or {}),
                    }
                },
            }
        )
        self.model = ScriptedModel(name="main", config=self.config.models["main"])
        self.runtime = Runtime(config=self.config, clients={"main": self.model})
        self.server = TestServer(build_app(self.runtime), host="127.0.0.1", port=0)

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def adapter(self) -> Any:
        return self.runtime.adapters[(TENANT, self.channel)]

    async def __aenter__(self) -> BotHarness:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    async def preload_history(self, conversation_key: str, *, turns: int, words_per_message: int) -> int:
        """Store ``turns`` user/assistant exchanges in the conversation; returns the tokens stored."""
        model = self.config.models["main"]
        body = " ".join(f"word{i % 97}" for i in range(words_per_message))
        async with self.runtime.db.write() as conn:
            cid = await get_or_create_conversation(conn, tenant=TENANT, channel=self.channel, key=conversation_key)
            total = 0
            for n in range(turns):
                pair = [
                    Message.user(f"old question {n}: {body}"),
                    Message.assistant(f"old answer {n}: {body}"),
                ]
                items = [(m, self.runtime.budget.count_message(model, m)) for m in pair]
                total += sum(c for _, c in items)
                await append_messages(conn, conversation_id=cid, turn_id=f"preload-{n}", items=items, turn_start=True)
        return total

    async def side_effects(self) -> dict[str, int]:
        """Row counts that an inbound event would change."""
        out = {}
        async with self.runtime.db.read() as conn:
            for name, table in [
                ("events", InboundEvent),
                ("messages", MessageRow),
                ("turns", TurnRow),
                ("deliveries", Delivery),
            ]:
                out[name] = int((await conn.execute(select(func.count()).select_from(table.__table__))).scalar_one())
        return out


class ChannelHarness(ABC):
    """What a channel's conformance test supplies. Conversations are named by the test ("c1")."""

    channel: ClassVar[str]
    limit: ClassVar[tuple[int, Literal["chars", "bytes"]] | None] = None
    """Longest message the vendor takes, or None when the channel does not chunk."""

    @abstractmethod
    def channel_config(self) -> Mapping[str, Any]:
        """The ``channels.<name>`` section, pointing the adapter at this harness's fake vendor."""

    async def start(self) -> None:
        """Start fake vendor servers (before the bot starts)."""

    async def stop(self) -> None:
        """Stop them."""

    async def connect(self, bot: BotHarness) -> None:
        """Called once the bot runs (e.g. wait for a gateway session)."""

    @abstractmethod
    def conversation_key(self, conversation: str) -> str:
        """The Turn.conversation_key the adapter derives for messages of ``conversation``."""

    @abstractmethod
    async def send(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> None:
        """Deliver a genuine user message the way the vendor would."""

    async def send_forged(self, bot: BotHarness, *, conversation: str, text: str, event_id: str) -> int | None:
        """Deliver it with a bad signature/token; return the status seen (401), or None if not applicable."""
        return None

    @abstractmethod
    async def replies(self, conversation: str) -> list[str]:
        """Texts the fake vendor received for ``conversation``, in order (one per message/chunk)."""

    def recorded_cases(self) -> Sequence[RecordedCase]:
        return ()
