"""The invocation service: the one place a turn is run, for every channel and background job.

load -> normalize -> budget (the budget engine, before EVERY model call) -> model with retries and
fallbacks (the router) -> tools loop (with hooks) -> persist -> ledger. A turn always ends in a
:class:`Reply`: failures become a clear message for the user, never a silent drop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from botframework.budget import BudgetEngine
from botframework.calls import CallRecorder
from botframework.config.schema import AgentConfig, Config
from botframework.errors import (
    AllModelsFailedError,
    BudgetError,
    ContextOverflowError,
    ErrorKind,
    InputTooLargeError,
    ModelError,
    StorageError,
    TurnAbortedError,
)
from botframework.events import EventBus, EventKind
from botframework.hooks import TurnHooks
from botframework.ledger import LedgerWriter
from botframework.limits import Limits
from botframework.media import MediaResolver
from botframework.messages import Message, ToolSpec
from botframework.modelcalls import ModelGateway
from botframework.models.base import ModelRequest, ModelResponse
from botframework.models.router import ModelRouter
from botframework.states import TurnFailure
from botframework.summarize import ModelSummarizer
from botframework.tools.base import Tool, ToolContext
from botframework.tools.executor import ToolExecutor
from botframework.tools.output import ToolTimeBudget
from botframework.tools.toolset import Toolset
from botframework.turn import NullSink, Origin, Reply, ReplySink
from storage.conversations import append_messages, turn_messages
from storage.db import Database

__all__ = ["AgentRuntime", "Closing", "InvocationService", "Steering", "user_message_for"]

log = logging.getLogger("botframework.invocation")

Steering = Callable[[], Awaitable[int]]
"""Called before every model call; merges messages that arrived meanwhile into the turn, returns how many."""


class Closing(Protocol):
    """What a caller writes in the transaction that stores a turn's final answer (the turn's
    delivery and end), so that the answer and its delivery commit together."""

    async def write(self, conn: AsyncConnection, reply: Reply) -> None:
        """Runs inside that transaction, with the Reply ``run_turn`` is about to return."""

    def rolled_back(self) -> None:
        """That transaction failed: what ``write`` did is gone (the answer is then stored alone)."""


_UNAVAILABLE = "The model service is unavailable right now ({kind}). Please try again in a little while."
_USER_MESSAGES: Mapping[str, str] = {
    ErrorKind.RATE_LIMITED: "The model is rate limited right now. Please try again in a minute.",
    ErrorKind.AUTH: "The bot could not authenticate with its model provider. An administrator needs to "
    "check the model's api_key.",
    ErrorKind.BILLING: "The model provider refused the request for billing or quota reasons. An administrator "
    "needs to check the account.",
    ErrorKind.MODEL_NOT_FOUND: "The configured model does not exist at the provider. An administrator needs "
    "to check the model name.",
    ErrorKind.CONTEXT_OVERFLOW: "This conversation no longer fits the model's context window even after "
    "trimming. Please start a new conversation or shorten your message.",
    ErrorKind.CONTENT_FILTER: "The model provider's content filter blocked this reply.",
}


def user_message_for(error: BaseException) -> tuple[ErrorKind | TurnFailure, str]:
    """(error kind, message for the user) for a turn that could not produce an answer."""
    if isinstance(error, InputTooLargeError):
        return TurnFailure.INPUT_TOO_LARGE, f"Your message is too long for this bot: {error}."
    if isinstance(error, BudgetError):
        return TurnFailure.INPUT_TOO_LARGE, f"This request cannot be fitted to the model: {error}."
    if isinstance(error, TurnAbortedError):
        return TurnFailure.ABORTED, error.message
    if isinstance(error, AllModelsFailedError):
        kind = error.last_kind or ErrorKind.SERVER_ERROR
        return kind, _USER_MESSAGES.get(kind, _UNAVAILABLE.format(kind=kind.value.replace("_", " ")))
    if isinstance(error, ModelError):
        if error.kind is ErrorKind.BAD_REQUEST:
            return error.kind, f"The model rejected the request: {error.detail}"
        return error.kind, _USER_MESSAGES.get(error.kind, _UNAVAILABLE.format(kind=error.kind.value))
    return TurnFailure.INTERNAL, "Something went wrong on our side while answering. Please try again."


@dataclass(frozen=True, kw_only=True)
class AgentRuntime:
    """A tenant's agent, resolved once at start: config, tools, hooks."""

    tenant: str
    agent: AgentConfig
    tools: Sequence[Tool]
    hooks: TurnHooks
    toolset: Toolset | None = None
    """Tools found at run time (MCP servers), with ``tools``; asked before each model call when set."""

    async def current_tools(self) -> Sequence[Tool]:
        """The tools to offer the model now."""
        return self.tools if self.toolset is None else await self.toolset.current()

    @property
    def candidates(self) -> list[str]:
        return [self.agent.model, *self.agent.fallback_models]

    @property
    def tool_specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec for t in self.tools)


class _ReplyStream:
    """Joins the text of every model round into one reply and keeps the live sink consistent with it.

    A retry or a fallback voids only the current round; the sink is reset and given back the text
    of earlier rounds, so what the user sees always equals the reply text.
    """

    SEPARATOR = "\n\n"

    def __init__(self, sink: ReplySink, committed: str = "") -> None:
        self.sink = sink
        self.committed = committed
        self.current = ""
        self.noticed = False

    async def retrying(self) -> None:
        """Tell the user once per turn that the answer is being retried, instead of silence."""
        if not self.noticed:
            self.noticed = True
            await self.sink.notice(RETRYING)

    async def text(self, delta: str) -> None:
        if not delta:
            return
        prefix = self.SEPARATOR if self.committed and not self.current else ""
        self.current += delta
        await self.sink.delta(prefix + delta)

    async def reset(self) -> None:
        self.current = ""
        await self.sink.reset()
        if self.committed:
            await self.sink.delta(self.committed)

    def commit(self, text: str) -> None:
        """End a round with the text the model actually returned (authoritative over deltas)."""
        if text:
            self.committed = f"{self.committed}{self.SEPARATOR}{text}" if self.committed else text
        self.current = ""


class InvocationService:
    """Runs turns. Shared by every channel, the CLI and background jobs; holds no per-turn state."""

    def __init__(
        self,
        *,
        config: Config,
        db: Database,
        budget: BudgetEngine,
        router: ModelRouter,
        agents: Mapping[str, AgentRuntime],
        events: EventBus,
        ledger: LedgerWriter,
        media: MediaResolver | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.config = config
        self.limits = limits
        """Per-tenant model-call concurrency (None: unlimited, e.g. the CLI)."""
        self.media = media
        """Resolves channel image references before each model call (None: the CLI, no channels)."""
        self.db = db
        self.budget = budget
        self.router = router
        self.agents = agents
        self.events = events
        self.ledger = ledger
        self.model_calls = ModelGateway(
            router=router, budget=budget, ledger=ledger, events=events, models=config.models
        )
        """One-shot calls for tools (``ctx.models``) and the summarizer."""
        self._executors = {name: self._make_executor(a) for name, a in agents.items()}

    def _make_executor(self, agent: AgentRuntime) -> ToolExecutor:
        primary = self.config.models[agent.agent.model]
        smallest = min(self.config.models[m].context_window for m in agent.candidates)
        return ToolExecutor(
            tools=agent.tools,
            hooks=agent.hooks,
            events=self.events,
            timeout_s=agent.agent.tool_timeout_s,
            max_result_tokens=max(64, smallest // 4),
            count_tokens=lambda text: self.budget.count_text(primary, text),
            image_tokens=self.budget.config.image_tokens,
        )

    async def emit(self, kind: EventKind, ctx: ToolContext, **data: Any) -> None:
        await self.events.publish(kind, ctx, **data)

    async def persist(
        self,
        agent: AgentRuntime,
        conversation_id: int,
        turn_id: str,
        messages: Sequence[Message],
        *,
        turn_start: bool = False,
        also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> list[Message]:
        """Store messages of a turn with their token counts (computed once, here); ``also`` writes
        more in the same transaction."""
        primary = self.config.models[agent.agent.model]
        items = [(m, await self.budget.acount_message(primary, m)) for m in messages]
        async with self.db.write() as conn:
            stored = await append_messages(
                conn, conversation_id=conversation_id, turn_id=turn_id, items=items, turn_start=turn_start
            )
            if also is not None:
                await also(conn)
            return stored

    async def run_turn(
        self,
        *,
        tenant: str,
        conversation_id: int,
        turn_id: str,
        origin: Origin,
        sink: ReplySink | None = None,
        steer: Steering | None = None,
        fresh: bool = False,
        closing: Closing | None = None,
    ) -> Reply:
        """Answer the turn whose messages are already stored. Never raises for model or tool failures;
        cancellation (``asyncio.CancelledError``) and StorageError (the database failed: run the turn
        again later) propagate, keeping what was persisted. Model calls share one deadline,
        ``agent.turn_timeout_s`` from now.

        ``fresh``: the turn never ran before, so it has stored only user messages and there is no
        earlier work of it (answers, tool results) to read back and resume from. ``closing`` writes
        in the transaction that stores the final answer (not for a failed turn's error reply).
        """
        agent = self.agents[tenant]
        router = self.limits.gate(self.router, tenant) if self.limits is not None else self.router
        ctx = ToolContext(tenant=tenant, conversation_id=conversation_id, turn_id=turn_id, origin=origin.label)
        ctx = replace(ctx, model_calls=self.model_calls.for_agent(ctx, agent.agent))
        so_far: list[Message] = []
        if not fresh:
            async with self.db.read() as conn:
                so_far = await turn_messages(conn, turn_id=turn_id)
        stream = _ReplyStream(
            sink or NullSink(),
            committed=_SEP.join(m.text for m in so_far if m.role == "assistant" and m.text),
        )
        if so_far and so_far[-1].role == "assistant" and not so_far[-1].tool_calls and len(so_far) > 1:
            # Recovered after a crash: the answer was stored, only its delivery was lost.
            return Reply(text=stream.committed, model=so_far[-1].model)
        observer = CallRecorder(
            budget=self.budget,
            ledger=self.ledger,
            events=self.events,
            models=self.config.models,
            ctx=ctx,
            on_reset=stream.reset,
            on_retrying=stream.retrying,
        )
        deadline = self.router.deadline_in(agent.agent.turn_timeout_s)
        await self.emit(EventKind.TURN_START, ctx)
        last_model: str | None = None
        tool_time = ToolTimeBudget(agent.agent.tool_budget_s)
        try:
            await self._finish_dangling_calls(agent, ctx, so_far, tool_time)
            rounds = sum(1 for m in so_far if m.role == "assistant" and m.tool_calls)
            while True:
                if steer is not None:
                    merged = await steer()
                    if merged:
                        await self.emit(EventKind.STEERED, ctx, messages=merged)
                tools = await agent.current_tools()
                offer = tuple(t.spec for t in tools) if rounds < agent.agent.max_tool_rounds else ()
                routed = await router.call(
                    candidates=agent.candidates,
                    build=lambda name, offer=offer: self._build(agent, ctx, name, offer),  # type: ignore[misc]
                    on_overflow=self._on_overflow,
                    on_text=stream.text,
                    observer=observer,
                    deadline=deadline,
                )
                last_model = routed.model_name
                response = await agent.hooks.after_model(ctx, routed.response, routed.model_name)
                stream.commit(response.text)
                if not response.tool_calls:
                    reply = self._answer(stream.committed, response.finish_reason == "length", last_model, observer)
                    await self._store_answer(agent, ctx, response, routed.model_name, reply, closing)
                    break
                await self._store_response(agent, ctx, response, routed.model_name)
                rounds += 1
                results = await self._executors[tenant].run(response.tool_calls, ctx, tools=tools, budget=tool_time)
                await self.persist(agent, conversation_id, turn_id, results)
        except asyncio.CancelledError:
            await self.emit(EventKind.TURN_END, ctx, outcome=TurnFailure.CANCELLED)
            raise
        except StorageError:
            # Not an answer: the turn stays open and is run again (what it stored is reused).
            await self.emit(EventKind.TURN_END, ctx, outcome="storage")
            raise
        except Exception as exc:
            kind, text = user_message_for(exc)
            if kind is TurnFailure.INTERNAL:
                log.exception("turn %s failed unexpectedly", turn_id)
            else:
                log.warning("turn %s ended with %s: %s", turn_id, kind, exc)
            await self.emit(EventKind.TURN_END, ctx, outcome=kind)
            return Reply(
                text=text,
                model=last_model,
                input_tokens=observer.input_tokens,
                output_tokens=observer.output_tokens,
                error_kind=kind,
            )
        await self.emit(EventKind.TURN_END, ctx, outcome="ok", model=last_model)
        return reply

    @staticmethod
    def _answer(committed: str, truncated: bool, model: str | None, observer: CallRecorder) -> Reply:
        text = committed or "(The model returned an empty answer.)"
        if truncated:
            text += f"{_SEP}(The reply was cut off at the output limit.)"
        return Reply(text=text, model=model, input_tokens=observer.input_tokens, output_tokens=observer.output_tokens)

    async def _store_answer(
        self,
        agent: AgentRuntime,
        ctx: ToolContext,
        response: ModelResponse,
        model_name: str,
        reply: Reply,
        closing: Closing | None,
    ) -> None:
        """The final answer, with what ``closing`` writes; alone when that transaction fails, so a
        turn run again reuses the answer instead of asking the model twice."""
        if closing is not None:
            close = closing

            async def also(conn: AsyncConnection) -> None:
                await close.write(conn, reply)

            try:
                await self._store_response(agent, ctx, response, model_name, also=also)
                return
            except StorageError as exc:
                closing.rolled_back()
                log.warning(
                    "turn %s: the answer could not be stored with its delivery (%s); storing it alone", ctx.turn_id, exc
                )
        await self._store_response(agent, ctx, response, model_name)

    async def _build(
        self, agent: AgentRuntime, ctx: ToolContext, model_name: str, offer: Sequence[ToolSpec]
    ) -> ModelRequest:
        model = self.config.models[model_name]
        summarizer = None
        if agent.agent.history.strategy == "summarize":
            summarizer = ModelSummarizer.for_agent(self.model_calls, ctx, agent.agent)
        prepared = await self.budget.prepare(
            conversation_id=ctx.conversation_id,
            turn_id=ctx.turn_id,
            model_name=model_name,
            model=model,
            agent=agent.agent,
            tools=offer,
            summarizer=summarizer,
        )
        request = await agent.hooks.before_model(
            ctx, prepared.to_request(temperature=agent.agent.temperature), model_name
        )
        if self.media is not None:
            request = replace(request, messages=await self.media.resolve(ctx.tenant, request.messages))
        await self.emit(
            EventKind.MODEL_REQUEST,
            ctx,
            model=model_name,
            purpose="turn",
            messages=len(request.messages),
            estimated_prompt_tokens=request.estimated_prompt_tokens,
            max_tokens=request.max_tokens,
            tools=len(request.tools),
        )
        return request

    async def _on_overflow(self, model_name: str, error: ContextOverflowError, request: ModelRequest) -> None:
        self.budget.learn_overflow(
            model_name=model_name,
            model=self.config.models[model_name],
            error=error,
            estimated_prompt_tokens=request.estimated_prompt_tokens,
            max_tokens=request.max_tokens,
        )

    async def _store_response(
        self,
        agent: AgentRuntime,
        ctx: ToolContext,
        response: ModelResponse,
        model_name: str,
        *,
        also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> None:
        message = Message.assistant(response.text, tool_calls=response.tool_calls)
        message.model = model_name
        await self.persist(agent, ctx.conversation_id, ctx.turn_id, [message], also=also)

    async def _finish_dangling_calls(
        self, agent: AgentRuntime, ctx: ToolContext, so_far: Sequence[Message], tool_time: ToolTimeBudget
    ) -> None:
        """After a crash mid-tools: run the calls of this turn that have no stored result yet.

        Calls that already have a result are never run again.
        """
        answered = {m.tool_call_id for m in so_far if m.role == "tool"}
        for message in reversed(so_far):
            if message.role == "assistant" and message.tool_calls:
                missing = [c for c in message.tool_calls if c.id not in answered]
                if missing:
                    tools = await agent.current_tools()
                    results = await self._executors[ctx.tenant].run(missing, ctx, tools=tools, budget=tool_time)
                    await self.persist(agent, ctx.conversation_id, ctx.turn_id, results)
                return


_SEP = _ReplyStream.SEPARATOR
RETRYING = "retrying…"
"""The notice a live channel shows (once per turn) while the models are retried."""
