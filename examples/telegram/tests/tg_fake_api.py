"""A local fake of the Telegram Bot API that records every call it receives.

Point the channel at ``fake.base_url`` (``api_base_url``). It answers ``POST /bot<token>/<method>``
like the Bot API: ``getMe``, ``sendMessage`` and ``editMessageText`` (each sent message gets the
next ``message_id``), ``getUpdates`` (long polls the updates queued with :meth:`FakeTelegram.push`,
honouring ``offset`` and ``timeout``), ``setWebhook`` and ``deleteWebhook``; any other method
answers ``{"ok": true, "result": true}``. A wrong token gets 401 ``Unauthorized``.
``fail(method, error_code, description, parameters)`` makes the next call of a method fail the way
Telegram does (``ok: false`` with that HTTP status).

:func:`update_json` builds the updates Telegram would post for a user's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["BOT_ID", "BOT_TOKEN", "BOT_USERNAME", "FakeTelegram", "TelegramCall", "group_update", "private_update"]

BOT_ID = 7123456789
BOT_USERNAME = "acme_helper_bot"
BOT_TOKEN = f"{BOT_ID}:AAHk3x9vQz7yR2mTt0pLw4sNcXbJdEeFfGg"
_DATE = 1764939600


@dataclass
class TelegramCall:
    method: str
    params: dict[str, Any]
    ok: bool = False
    """Whether the fake answered ``ok: true``."""


@dataclass
class _Failure:
    error_code: int
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


class FakeTelegram:
    """``async with FakeTelegram() as fake``: a Bot API on 127.0.0.1:<free port>."""

    def __init__(self, *, token: str = BOT_TOKEN, username: str = BOT_USERNAME) -> None:
        self.token = token
        self.username = username
        self.calls: list[TelegramCall] = []
        self.updates: list[dict[str, Any]] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._message_ids = itertools.count(100_001)
        self._pushed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # what tests use

    def of(self, method: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The ``sendMessage`` calls that succeeded, in order."""
        return [c.params for c in self.calls if c.method == "sendMessage" and c.ok]

    def fail(self, method: str, error_code: int, description: str, **parameters: Any) -> None:
        self._failures.setdefault(method, []).append(_Failure(error_code, description, dict(parameters)))

    def push(self, update: dict[str, Any]) -> None:
        """Queue an update for ``getUpdates``."""
        self.updates.append(update)
        self._pushed.set()

    # the API

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        params: dict[str, Any] = json.loads(raw) if raw else dict(request.query)
        call = TelegramCall(method=method, params=params)
        self.calls.append(call)
        response = await self._answer(request.match_info["token"], method, params)
        call.ok = response.status == 200
        return response

    async def _answer(self, token: str, method: str, params: dict[str, Any]) -> web.Response:
        if token != self.token:
            return _error(401, "Unauthorized")
        failures = self._failures.get(method)
        if failures:
            failure = failures.pop(0)
            return _error(failure.error_code, failure.description, failure.parameters)
        if method == "getMe":
            return _ok({"id": BOT_ID, "is_bot": True, "first_name": "Acme Helper", "username": self.username})
        if method == "getUpdates":
            return _ok(await self._get_updates(params))
        if method in ("sendMessage", "editMessageText"):
            chat = {"id": params.get("chat_id"), "type": "private"}
            message_id = params.get("message_id") or next(self._message_ids)
            bot = {"id": BOT_ID, "is_bot": True, "first_name": "Acme Helper", "username": self.username}
            return _ok({"message_id": message_id, "from": bot, "chat": chat, "date": _DATE, "text": params["text"]})
        return _ok(True)

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)

        def pending() -> list[dict[str, Any]]:
            return [u for u in self.updates if u["update_id"] >= offset]

        if not pending():
            self._pushed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pushed.wait(), float(params.get("timeout") or 0))
        return pending()[:100]


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


def private_update(update_id: int, *, chat_id: int, text: str, message_id: int | None = None) -> dict[str, Any]:
    """A user's text message in their private chat with the bot (the user id is the chat id)."""
    user = {"id": chat_id, "is_bot": False, "first_name": "Ada", "username": "ada_l"}
    chat = {"id": chat_id, "first_name": "Ada", "username": "ada_l", "type": "private"}
    message = {"message_id": message_id or update_id % 100_000, "from": user, "chat": chat, "date": _DATE, "text": text}
    return {"update_id": update_id, "message": message}


def group_update(update_id: int, *, chat_id: int, text: str, user_id: int = 931002457) -> dict[str, Any]:
    """A message in a supergroup that mentions the bot first (``@acme_helper_bot <text>``)."""
    user = {"id": user_id, "is_bot": False, "first_name": "Bob", "username": "bob_builds"}
    chat = {"id": chat_id, "title": "Acme Engineering", "type": "supergroup"}
    mention = f"@{BOT_USERNAME}"
    message = {
        "message_id": update_id % 100_000,
        "from": user,
        "chat": chat,
        "date": _DATE,
        "text": f"{mention} {text}",
        "entities": [{"offset": 0, "length": len(mention), "type": "mention"}],
    }
    return {"update_id": update_id, "message": message}
