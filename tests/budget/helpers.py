"""Shared test helpers: conversation writers (memory or database) and the invariant checker."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from sqlalchemy import Table, update

from botframework.budget import BudgetEngine, InMemoryHistory, PreparedRequest
from botframework.budget.fit import protected_cost
from botframework.budget.normalize import (
    alternation_violations,
    flatten_tool_messages,
    repair_tool_blocks,
    tool_protocol_violations,
)
from botframework.budget.tokens import IMAGE_NOTE, REPLY_PRIMING
from botframework.config.schema import AgentConfig, BudgetConfig, ModelConfig
from botframework.errors import InputTooLargeError
from botframework.messages import Message, ToolSpec
from storage.conversations import append_messages, get_or_create_conversation
from storage.db import Database
from storage.tables import MessageRow

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")


def words(n: int, seed: int = 0) -> str:
    """About ``n`` tokens of text (each word is one cl100k token)."""
    return " ".join(WORDS[(seed + i) % len(WORDS)] for i in range(n))


def model(
    window: int | None = 4096, *, max_output: int = 512, provider: str = "openai", name: str = "gpt-4", **kw: object
) -> ModelConfig:
    """A model counted exactly offline (gpt-4 is cl100k_base) unless told otherwise; window None: unknown."""
    extra: dict[str, object] = {} if provider == "offline" else {"api_key": "k"}
    if window is not None:
        extra["context_window"] = window
    return ModelConfig.model_validate(
        {"provider": provider, "model": name, "max_output_tokens": max_output, **extra, **kw}
    )


def agent(**kw: object) -> AgentConfig:
    return AgentConfig.model_validate({"model": "m", "system_prompt": "You are terse.", **kw})


def budget_config(**kw: object) -> BudgetConfig:
    return BudgetConfig.model_validate({"allow_encoding_download": False, **kw})


class Writer(Protocol):
    async def append(self, turn_id: str, messages: Sequence[Message], *, turn_start: bool = False) -> list[Message]: ...

    async def steer(self, from_turn: str, to_turn: str) -> None: ...

    async def stored(self) -> list[Message]: ...


@dataclass
class MemoryWriter:
    engine: BudgetEngine
    model: ModelConfig
    store: InMemoryHistory
    conversation_id: int = 1

    async def append(self, turn_id: str, messages: Sequence[Message], *, turn_start: bool = False) -> list[Message]:
        items = [(m, self.engine.count_message(self.model, m)) for m in messages]
        return self.store.append(self.conversation_id, turn_id=turn_id, items=items, turn_start=turn_start)

    async def steer(self, from_turn: str, to_turn: str) -> None:
        self.store.move_turn(self.conversation_id, from_turn=from_turn, to_turn=to_turn)

    async def stored(self) -> list[Message]:
        return self.store.messages(self.conversation_id)


@dataclass
class DbWriter:
    engine: BudgetEngine
    model: ModelConfig
    db: Database
    conversation_id: int = 0

    @classmethod
    async def create(cls, engine: BudgetEngine, model: ModelConfig, db: Database, key: str = "u") -> DbWriter:
        async with db.write() as conn:
            cid = await get_or_create_conversation(conn, tenant="acme", channel="test", key=key)
        return cls(engine, model, db, cid)

    async def append(self, turn_id: str, messages: Sequence[Message], *, turn_start: bool = False) -> list[Message]:
        items = [(m, self.engine.count_message(self.model, m)) for m in messages]
        async with self.db.write() as conn:
            return await append_messages(
                conn, conversation_id=self.conversation_id, turn_id=turn_id, items=items, turn_start=turn_start
            )

    async def steer(self, from_turn: str, to_turn: str) -> None:
        table = cast(Table, MessageRow.__table__)
        async with self.db.write() as conn:
            await conn.execute(
                update(table).where(table.c.turn_id == from_turn).values(turn_id=to_turn, turn_start=False)
            )

    async def stored(self) -> list[Message]:
        from sqlalchemy import select

        from storage.conversations import message_from_row

        table = MessageRow.__table__
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(table).where(table.c.conversation_id == self.conversation_id).order_by(table.c.id)
            )
            return [message_from_row(r) for r in rows]


@dataclass
class Case:
    """One prepare() call's inputs, for the checker."""

    engine: BudgetEngine
    model: ModelConfig
    agent: AgentConfig
    model_name: str = "m"
    tools: tuple[ToolSpec, ...] = ()
    conversation_id: int = 1
    checks: list[str] = field(default_factory=list)

    async def prepare(self, turn_id: str) -> PreparedRequest:
        return await self.engine.prepare(
            conversation_id=self.conversation_id,
            turn_id=turn_id,
            model_name=self.model_name,
            model=self.model,
            agent=self.agent,
            tools=self.tools,
        )


def normalized_turn(engine: BudgetEngine, model_cfg: ModelConfig, messages: Sequence[Message]) -> list[Message]:
    """The running turn as the engine should see it (repaired, images stripped), for the checker."""
    out, _ = repair_tool_blocks(messages)
    if not model_cfg.supports_images:
        enc = engine.encoding(model_cfg)
        out = [
            replace(
                m.without_images(IMAGE_NOTE),
                token_count=(m.token_count or 0) + engine.counter.image_strip_delta(enc, m),
            )
            if m.images
            else m
            for m in out
        ]
    return out


def check_prepared(case: Case, prepared: PreparedRequest, stored: Sequence[Message], turn_id: str) -> None:
    """Assert the budget invariants 1-4 and 6 (botframework.budget) for one prepared request."""
    engine, model_cfg = case.engine, case.model
    limits = engine.limits(model_name=case.model_name, model=model_cfg, agent=case.agent)
    enc = engine.encoding(model_cfg)

    # 1. Fits: recount everything sent from scratch.
    recount = engine.counter.text(enc, prepared.system) + REPLY_PRIMING
    recount += engine.counter.tools(enc, prepared.tools)
    recount += sum(engine.count_message(model_cfg, m) for m in prepared.messages)
    assert recount <= prepared.estimated_prompt_tokens, (recount, prepared.estimated_prompt_tokens)
    provider_prompt = math.ceil(prepared.estimated_prompt_tokens * limits.ratio - 1e-9)
    assert provider_prompt + prepared.max_tokens + limits.margin <= limits.window

    # 2. Output reserve and floor.
    assert limits.floor <= prepared.max_tokens <= limits.reserve <= limits.window // 2
    if not model_cfg.supports_tools:
        assert prepared.tools == ()
        assert all(m.role != "tool" and not m.tool_calls for m in prepared.messages)

    # 3. Tool protocol, in the neutral form and after merging for strict alternation.
    assert tool_protocol_violations(prepared.messages) == []
    if prepared.messages and prepared.messages[0].role == "user":
        assert alternation_violations(prepared.messages) == []
    if not model_cfg.supports_images:
        assert all(not m.images for m in prepared.messages)

    # 4. The running turn: its user messages and its active tool tail are all there.
    current_ids = {m.id or 0 for m in stored if m.turn_id == turn_id}
    start_id = min(current_ids)
    sent_ids = [m.id for m in prepared.messages]
    for m in stored:
        if m.turn_id == turn_id and m.role == "user":
            assert m.id in sent_ids, f"user message {m.id} of the running turn was dropped"
    repaired_current, _ = repair_tool_blocks([m for m in stored if m.turn_id == turn_id])
    if repaired_current and repaired_current[-1].role == "tool":
        k = len(repaired_current) - 1
        while repaired_current[k].role == "tool":
            k -= 1
        for m in repaired_current[k:]:
            assert m.id in sent_ids, "the active tool tail was dropped"

    # History: whole earlier turns only, starting with a user turn start; no later queued turn.
    history = [m for m in prepared.messages if m.id not in current_ids]
    turn_starts = {m.turn_id: m.id or 0 for m in stored if m.turn_start}
    for m in history:
        assert m.turn_id in turn_starts and turn_starts[m.turn_id] < start_id, "a later or unknown turn leaked in"
    if history:
        assert history[0].turn_start and history[0].role == "user"
        assert prepared.history_start_offset == history[0].offset
        assert sent_ids[: len(history)] == [m.id for m in history], "history must precede the running turn"
    for tid in dict.fromkeys(m.turn_id for m in history):
        whole, _ = repair_tool_blocks([m for m in stored if m.turn_id == tid])
        assert [m.id for m in history if m.turn_id == tid] == [m.id for m in whole], f"turn {tid} was cut"


def check_too_large(case: Case, error: InputTooLargeError, stored: Sequence[Message], turn_id: str) -> None:
    """Invariant 5: raising is right only when the protected part really cannot fit."""
    engine, model_cfg = case.engine, case.model
    limits = engine.limits(model_name=case.model_name, model=model_cfg, agent=case.agent)
    enc = engine.encoding(model_cfg)
    repaired, _ = repair_tool_blocks([m for m in stored if m.turn_id == turn_id])
    current = normalized_turn(engine, model_cfg, repaired)
    tools = case.tools if model_cfg.supports_tools else ()
    if not model_cfg.supports_tools:
        current = flatten_tool_messages(current, lambda m: engine.counter.message(enc, m))
    fixed = engine.counter.text(enc, case.agent.system_prompt) + engine.counter.tools(enc, tools) + REPLY_PRIMING
    core = fixed + protected_cost(repaired, [m.token_count or 0 for m in current])
    provider = math.ceil(core * limits.ratio - 1e-9)
    assert provider + limits.floor + limits.margin > limits.window, (provider, limits)
    assert error.available == limits.window - limits.margin - limits.floor


async def bulk_insert(
    db: Database, conversation_id: int, turns: Sequence[Sequence[tuple[Message, int]]], *, first_turn: int = 0
) -> None:
    """Insert whole turns at once (ids, offsets and turn starts as append_messages sets them)."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from storage.tables import Conversation

    conversations = cast(Table, Conversation.__table__)
    table = cast(Table, MessageRow.__table__)
    now = datetime.now(UTC)
    async with db.write() as conn:
        offset = int(
            (
                await conn.execute(select(conversations.c.total_tokens).where(conversations.c.id == conversation_id))
            ).scalar_one()
        )
        rows = []
        for t, turn in enumerate(turns):
            for i, (m, count) in enumerate(turn):
                rows.append(
                    dict(
                        conversation_id=conversation_id,
                        turn_id=f"t{first_turn + t}",
                        turn_start=i == 0,
                        role=m.role,
                        content=[{"type": "text", "text": m.text}],
                        tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls]
                        or None,
                        tool_call_id=m.tool_call_id,
                        name=m.name,
                        is_error=m.is_error,
                        token_count=count,
                        offset=offset,
                        model=None,
                        created_at=now,
                    )
                )
                offset += count
        await conn.execute(table.insert(), rows)
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(total_tokens=offset, message_count=conversations.c.message_count + len(rows))
        )
