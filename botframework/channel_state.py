"""Small persistent state a channel keeps between runs, per (tenant, channel): a key/value store.

Some vendors hand a bot state it must keep across restarts: a session obtained by an interactive
login (a bot token, its id, the API host to use), or the cursor of a long poll. The runtime offers
each adapter its own store (:meth:`botframework.channel.ChannelRuntime.channel_state`), kept in the
database next to the conversations, so it survives restarts and is shared by every process of a
deployment; tenants never see each other's state.

Values are JSON (strings, numbers, booleans, lists, objects). A store never logs what it holds:
sessions are credentials. Writes are single-row upserts, so the order "store the messages, then
advance the cursor" gives at-least-once ingestion, made exactly-once by the inbound dedupe.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Protocol

__all__ = ["ChannelState", "MemoryChannelState"]

JsonValue = Any
"""A JSON-serializable value (dict, list, str, int, float, bool or None)."""


class ChannelState(Protocol):
    """The state of one (tenant, channel)."""

    async def get(self, key: str) -> JsonValue | None:
        """The value stored under ``key``, or None."""

    async def set(self, key: str, value: JsonValue) -> None:
        """Store ``value`` under ``key`` (replacing what was there), durably before returning."""

    async def delete(self, key: str) -> None:
        """Forget ``key`` (no error if it is absent)."""


class MemoryChannelState:
    """A ChannelState in memory, for tests and for code that embeds an adapter without a database."""

    def __init__(self, initial: dict[str, JsonValue] | None = None) -> None:
        self.values: dict[str, JsonValue] = {}
        self.writes: list[tuple[str, JsonValue | None]] = []
        """Every set (key, value) and delete (key, None), in order."""
        for key, value in (initial or {}).items():
            self.values[key] = _checked(value)

    async def get(self, key: str) -> JsonValue | None:
        return copy.deepcopy(self.values.get(key))

    async def set(self, key: str, value: JsonValue) -> None:
        self.values[key] = _checked(value)
        self.writes.append((key, copy.deepcopy(value)))

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)
        self.writes.append((key, None))


def _checked(value: JsonValue) -> JsonValue:
    """A deep copy of ``value``; TypeError (naming the type) if it is not JSON, as the database store does."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"channel state values must be JSON, got {type(value).__name__}: {exc}") from exc
