"""Where the budget engine reads history from: the database, or memory (tests, benchmarks).

Both answer the same three window-bounded questions (see :mod:`storage.history`) so the engine
has one code path; :class:`InMemoryHistory` mirrors the SQL semantics exactly, which lets
property tests run thousands of random conversations without a database.
"""

from __future__ import annotations

import bisect
import operator
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.messages import Message
from storage import history as sql_history
from storage import summaries as sql_summaries
from storage.db import Database
from storage.history import RowKey
from storage.summaries import SummaryRecord

__all__ = ["HistoryReader", "HistorySource", "InMemoryHistory", "MessageCache", "SqlHistorySource"]


class HistoryReader(Protocol):
    async def turn_tail(self, *, conversation_id: int, turn_id: str) -> list[Message]: ...

    async def latest_summary(self, *, conversation_id: int) -> SummaryRecord | None: ...

    async def history_window(
        self, *, conversation_id: int, min_offset: int, max_offset: int, before_id: int
    ) -> list[Message]: ...

    async def offset_range(
        self, *, conversation_id: int, min_offset: int, max_offset: int, before_id: int
    ) -> list[Message]: ...


class HistorySource(Protocol):
    def reader(self) -> AbstractAsyncContextManager[HistoryReader]:
        """One connection for the queries of a ``prepare``."""
        ...

    async def add_summary(
        self,
        *,
        conversation_id: int,
        upto_offset: int,
        upto_message_id: int,
        text: str,
        token_count: int,
        model: str | None,
    ) -> SummaryRecord: ...


_FIELDS = [f.name for f in fields(Message)]
assert all(f.init and f.kw_only is False for f in fields(Message)), "positional copy needs plain fields"
_values = operator.attrgetter(*_FIELDS)


def _copy(message: Message) -> Message:
    """A shallow copy (3x faster than ``dataclasses.replace``; parts and calls are immutable)."""
    return Message(*_values(message))


class MessageCache:
    """Decoded history messages by id, least recently used out, bounded by their token counts and
    by how many there are: a decoded short message costs about 0.5 KB whatever its tokens, so the
    token bound alone let 2M tokens of chat-sized messages (~140k of them, ~75 MB) pile up.

    Consecutive requests of a conversation share most of their window (the cut is cache-stable),
    so decoding each stored row once instead of before every model call is most of the per-turn
    cost saved. Entries are checked against the row's (turn_id, turn_start, token_count, offset)
    on every use, so steering (turn moves) and a reused id are never served stale; rows are
    otherwise append-only. Hand out copies only: callers may change what they get.
    """

    def __init__(self, *, max_tokens: int = 2_000_000, max_entries: int = 20_000) -> None:
        self.max_tokens = max_tokens
        self.max_entries = max_entries
        self._items: OrderedDict[int, Message] = OrderedDict()
        self._tokens = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: RowKey) -> Message | None:
        found = self._items.get(key[0])
        if found is None or (found.turn_id, found.turn_start, found.token_count, found.offset) != key[1:]:
            self.misses += 1
            return None
        self._items.move_to_end(key[0])
        self.hits += 1
        return found

    def put(self, message: Message) -> None:
        assert message.id is not None
        old = self._items.pop(message.id, None)
        if old is not None:
            self._tokens -= old.token_count or 0
        self._items[message.id] = message
        self._tokens += message.token_count or 0
        while (self._tokens > self.max_tokens or len(self._items) > self.max_entries) and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self._tokens -= evicted.token_count or 0


class _SqlReader:
    def __init__(self, conn: AsyncConnection, cache: MessageCache | None) -> None:
        self.conn = conn
        self.cache = cache

    async def turn_tail(self, *, conversation_id: int, turn_id: str) -> list[Message]:
        return await sql_history.load_turn_tail(self.conn, conversation_id=conversation_id, turn_id=turn_id)

    async def latest_summary(self, *, conversation_id: int) -> SummaryRecord | None:
        return await sql_summaries.latest_summary(self.conn, conversation_id=conversation_id)

    async def history_window(
        self, *, conversation_id: int, min_offset: int, max_offset: int, before_id: int
    ) -> list[Message]:
        if self.cache is None:
            return await sql_history.load_history_window(
                self.conn,
                conversation_id=conversation_id,
                min_offset=min_offset,
                max_offset=max_offset,
                before_id=before_id,
            )
        keys = await sql_history.load_history_keys(
            self.conn,
            conversation_id=conversation_id,
            min_offset=min_offset,
            max_offset=max_offset,
            before_id=before_id,
        )
        found = [self.cache.get(k) for k in keys]
        missing = [k[0] for k, m in zip(keys, found, strict=True) if m is None]
        if missing:
            loaded = {
                m.id: m
                for m in await sql_history.load_messages_by_id(self.conn, conversation_id=conversation_id, ids=missing)
            }
            for k, i in zip(keys, range(len(found)), strict=True):
                if found[i] is None and k[0] in loaded:
                    found[i] = loaded[k[0]]
                    self.cache.put(loaded[k[0]])
        return [_copy(m) for m in found if m is not None]

    async def offset_range(
        self, *, conversation_id: int, min_offset: int, max_offset: int, before_id: int
    ) -> list[Message]:
        return await sql_history.load_offset_range(
            self.conn,
            conversation_id=conversation_id,
            min_offset=min_offset,
            max_offset=max_offset,
            before_id=before_id,
        )


class SqlHistorySource:
    """The production source: :mod:`storage.history` and :mod:`storage.summaries` on a Database,
    with a :class:`MessageCache` of decoded history (``cache_tokens=0`` turns it off)."""

    def __init__(self, db: Database, *, cache_tokens: int = 2_000_000) -> None:
        self.db = db
        self.cache = MessageCache(max_tokens=cache_tokens) if cache_tokens > 0 else None

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[HistoryReader]:
        async with self.db.read() as conn:
            yield _SqlReader(conn, self.cache)

    async def add_summary(
        self,
        *,
        conversation_id: int,
        upto_offset: int,
        upto_message_id: int,
        text: str,
        token_count: int,
        model: str | None,
    ) -> SummaryRecord:
        async with self.db.write() as conn:
            return await sql_summaries.add_summary(
                conn,
                conversation_id=conversation_id,
                upto_offset=upto_offset,
                upto_message_id=upto_message_id,
                text=text,
                token_count=token_count,
                model=model,
            )


class InMemoryHistory:
    """Conversations kept in lists, with the same ids/offsets/turn semantics as storage.

    Also counts the rows each read returns (``rows_read``), so tests can check that the work per
    turn is bounded by the window.
    """

    def __init__(self) -> None:
        self._messages: dict[int, list[Message]] = {}
        self._offsets: dict[int, list[int]] = {}
        self._summaries: dict[int, list[SummaryRecord]] = {}
        self._next_id = 1
        self._next_summary = 1
        self.rows_read = 0

    def messages(self, conversation_id: int) -> list[Message]:
        return list(self._messages.get(conversation_id, ()))

    def append(
        self,
        conversation_id: int,
        *,
        turn_id: str,
        items: Sequence[tuple[Message, int]],
        turn_start: bool = False,
    ) -> list[Message]:
        """Like ``storage.conversations.append_messages``."""
        stored = self._messages.setdefault(conversation_id, [])
        offsets = self._offsets.setdefault(conversation_id, [])
        offset = (stored[-1].offset or 0) + (stored[-1].token_count or 0) if stored else 0
        out = []
        for i, (message, count) in enumerate(items):
            m = replace(
                message,
                id=self._next_id,
                turn_id=turn_id,
                turn_start=turn_start and i == 0,
                token_count=count,
                offset=offset,
            )
            self._next_id += 1
            stored.append(m)
            offsets.append(offset)
            out.append(m)
            offset += count
        return out

    def move_turn(self, conversation_id: int, *, from_turn: str, to_turn: str) -> int:
        """Like ``storage.conversations.move_turn``."""
        stored = self._messages.get(conversation_id, [])
        moved = 0
        for i, m in enumerate(stored):
            if m.turn_id == from_turn:
                stored[i] = replace(m, turn_id=to_turn, turn_start=False)
                moved += 1
        return moved

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[HistoryReader]:
        yield _MemoryReader(self)

    async def add_summary(
        self,
        *,
        conversation_id: int,
        upto_offset: int,
        upto_message_id: int,
        text: str,
        token_count: int,
        model: str | None,
    ) -> SummaryRecord:
        record = SummaryRecord(
            id=self._next_summary,
            conversation_id=conversation_id,
            upto_offset=upto_offset,
            upto_message_id=upto_message_id,
            text=text,
            token_count=token_count,
            model=model,
            created_at=datetime.now(UTC),
        )
        self._next_summary += 1
        self._summaries.setdefault(conversation_id, []).append(record)
        return record

    def summaries(self, conversation_id: int) -> list[SummaryRecord]:
        return list(self._summaries.get(conversation_id, ()))

    # -- the reader's queries, with SQL semantics --

    def _turn_tail(self, conversation_id: int, turn_id: str) -> list[Message]:
        stored = self._messages.get(conversation_id, [])
        first = next((i for i, m in enumerate(stored) if m.turn_id == turn_id), None)
        rows = [] if first is None else [replace(m) for m in stored[first:]]
        self.rows_read += len(rows)
        return rows

    def _window(self, conversation_id: int, min_offset: int, max_offset: int, before_id: int) -> list[Message]:
        stored = self._messages.get(conversation_id, [])
        offsets = self._offsets.get(conversation_id, [])
        i = bisect.bisect_left(offsets, min_offset)
        while i < len(stored) and not (stored[i].turn_start and (stored[i].id or 0) < before_id):
            if offsets[i] > max_offset or (stored[i].id or 0) >= before_id:
                return []
            i += 1
        if i >= len(stored) or offsets[i] > max_offset:
            return []
        rows = []
        while i < len(stored) and (stored[i].id or 0) < before_id:
            rows.append(replace(stored[i]))
            i += 1
        self.rows_read += len(rows)
        return rows

    def _range(self, conversation_id: int, min_offset: int, max_offset: int, before_id: int) -> list[Message]:
        stored = self._messages.get(conversation_id, [])
        offsets = self._offsets.get(conversation_id, [])
        i = bisect.bisect_left(offsets, min_offset)
        rows = []
        while i < len(stored) and offsets[i] < max_offset:
            if (stored[i].id or 0) < before_id:
                rows.append(replace(stored[i]))
            i += 1
        self.rows_read += len(rows)
        return rows

    def _latest(self, conversation_id: int) -> SummaryRecord | None:
        found = self._summaries.get(conversation_id)
        if not found:
            return None
        return max(found, key=lambda s: (s.upto_offset, s.id))


class _MemoryReader:
    def __init__(self, store: InMemoryHistory) -> None:
        self.store = store

    async def turn_tail(self, *, conversation_id: int, turn_id: str) -> list[Message]:
        return self.store._turn_tail(conversation_id, turn_id)

    async def latest_summary(self, *, conversation_id: int) -> SummaryRecord | None:
        return self.store._latest(conversation_id)

    async def history_window(
        self, *, conversation_id: int, min_offset: int, max_offset: int, before_id: int
    ) -> list[Message]:
        return self.store._window(conversation_id, min_offset, max_offset, before_id)

    async def offset_range(
        self, *, conversation_id: int, min_offset: int, max_offset: int, before_id: int
    ) -> list[Message]:
        return self.store._range(conversation_id, min_offset, max_offset, before_id)
