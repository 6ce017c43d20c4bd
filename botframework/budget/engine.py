"""The context budget engine: stored history + current turn -> one request that fits the model.

``prepare`` runs before every model call of a turn's tool loop, for the candidate model about to
be called: load (window-bounded, in SQL) -> normalize -> fit -> reserve. Its cost depends on the
window, not on how long the conversation is: message token counts are computed once when
written (:meth:`BudgetEngine.count_message`) and prefix sums (``messages.offset``) locate the
cut with one index scan; nothing older than the cut is read.

Accounting is in *counted* tokens (our tiktoken counts); the calibration ratio turns them into
provider tokens. Invariant 1 as checked here: ``ceil(ratio x estimated_prompt_tokens) +
max_tokens + margin <= window``. Counts stored with a message were made in the encoding of the
model the message was first counted for; a different candidate (a fallback of another family)
reuses them and relies on its margin and on calibration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import tiktoken

from botframework.budget.calibration import Calibration
from botframework.budget.checks import system_prompt_problem
from botframework.budget.compaction import (
    SUMMARY_HEADER,
    Summarizer,
    compose_system,
    summarize_dropped,
    summary_chunk_tokens,
)
from botframework.budget.fit import (
    choose_cut,
    chunk_size,
    message_cost,
    protected_cost,
    trim_running_turn,
)
from botframework.budget.normalize import flatten_tool_messages, group_turns, repair_tool_blocks
from botframework.budget.reserve import Limits, output_floor, output_reserve, safety_margin
from botframework.budget.sources import HistorySource, SqlHistorySource
from botframework.budget.tokens import IMAGE_NOTE, REPLY_PRIMING, EncodingRegistry, TokenCounter
from botframework.config.schema import AgentConfig, BudgetConfig, HistoryConfig, ModelConfig
from botframework.errors import ContextOverflowError, InputTooLargeError
from botframework.messages import Message, TextPart, ToolSpec
from botframework.models.base import ModelRequest
from storage.db import Database
from storage.summaries import SummaryRecord

__all__ = ["SUMMARY_RETRY_AFTER_S", "BudgetEngine", "PreparedRequest"]

log = logging.getLogger("botframework.budget")

_LAST_CUTS = 10_000
SUMMARY_RETRY_AFTER_S = 300.0
_ASYNC_COUNT_CHARS = 20_000


@dataclass(frozen=True, kw_only=True)
class PreparedRequest:
    """One budgeted request, ready for a provider."""

    system: str
    """The system prompt, plus the summary block if one is used."""
    messages: tuple[Message, ...]
    """Normalized neutral messages: kept history, then the running turn."""
    tools: tuple[ToolSpec, ...]
    """() when the model does not support tools."""
    max_tokens: int
    estimated_prompt_tokens: int
    """Our count of the prompt (uncalibrated), to compare with the provider's usage report."""
    history_start_offset: int
    """Offset of the first kept history message (the running turn's offset when none is kept)."""
    dropped_messages: int
    """Loaded messages left out (broken tool blocks, partial turns, trimmed tool rounds)."""
    summary_id: int | None
    history_tokens: int = 0
    """Counted tokens of the kept history."""
    history_budget: int = 0
    """Counted tokens history could have used in this request."""
    window: int = 0
    margin: int = 0
    ratio: float = 1.0

    def to_request(self, *, temperature: float | None) -> ModelRequest:
        return ModelRequest(
            system=self.system,
            messages=self.messages,
            tools=self.tools,
            max_tokens=self.max_tokens,
            temperature=temperature,
            estimated_prompt_tokens=self.estimated_prompt_tokens,
        )


class BudgetEngine:
    """Counts, normalizes and fits; learns each model's real limits from its answers.

    One instance serves every conversation (state: encodings, calibration, last cuts).
    """

    def __init__(
        self,
        *,
        config: BudgetConfig,
        db: Database | None = None,
        source: HistorySource | None = None,
        encodings: EncodingRegistry | None = None,
    ) -> None:
        if source is None:
            if db is None:
                raise ValueError("BudgetEngine needs a db (or a history source)")
            source = SqlHistorySource(db)
        self.config = config
        self.source = source
        self.encodings = encodings or EncodingRegistry(allow_download=config.allow_encoding_download)
        self.counter = TokenCounter(config=config, encodings=self.encodings)
        self.calibration = Calibration(bounds=config.calibration_bounds)
        self._last_cuts: OrderedDict[tuple[int, str], int] = OrderedDict()
        self._summary_failures: OrderedDict[int, float] = OrderedDict()

    def _recently_failed(self, conversation_id: int) -> bool:
        """After a summary failed or timed out, a conversation trims for a while instead of trying
        again, so the later model calls of the same turn (and the next turns) do not each wait."""
        failed = self._summary_failures.get(conversation_id)
        return failed is not None and time.monotonic() - failed < SUMMARY_RETRY_AFTER_S

    # -- counting --

    def encoding(self, model: ModelConfig) -> tiktoken.Encoding:
        return self.encodings.choose(model).encoding

    def count_message(self, model: ModelConfig, message: Message) -> int:
        """Tokens this message costs in a request (content + per-message overhead + tool calls/ids,
        images at ``config.image_tokens``). Computed once, when the message is written."""
        return self.counter.message(self.encoding(model), message)

    async def acount_message(self, model: ModelConfig, message: Message) -> int:
        """:meth:`count_message` for use on the event loop: long messages are counted in a thread."""
        size = sum(len(p.text) for p in message.content if isinstance(p, TextPart)) + sum(
            len(c.arguments) for c in message.tool_calls
        )
        if size < _ASYNC_COUNT_CHARS:
            return self.count_message(model, message)
        return await asyncio.to_thread(self.count_message, model, message)

    def count_text(self, model: ModelConfig, text: str) -> int:
        return self.counter.text(self.encoding(model), text)

    def limits(self, *, model_name: str, model: ModelConfig, agent: AgentConfig) -> Limits:
        """The window, margin, output reserve and floor a request to this model gets now."""
        exact = self.encodings.choose(model).exact
        window = self.calibration.window(model_name, model.context_window)
        reserve = output_reserve(self.config, model, agent, window=window)
        return Limits(
            window=window,
            margin=safety_margin(self.config, window=window, exact=exact),
            reserve=reserve,
            floor=output_floor(self.config, reserve),
            ratio=self.calibration.ratio(model_name),
            exact=exact,
        )

    # -- learning --

    def observe_usage(
        self, *, model_name: str, model: ModelConfig, estimated_prompt_tokens: int, reported_input_tokens: int
    ) -> None:
        """Calibration: provider-reported prompt tokens (including cached ones) vs our estimate."""
        self.calibration.observe(model_name, estimated=estimated_prompt_tokens, reported=reported_input_tokens)

    def learn_overflow(
        self,
        *,
        model_name: str,
        model: ModelConfig,
        error: ContextOverflowError,
        estimated_prompt_tokens: int,
        max_tokens: int | None = None,
    ) -> None:
        """The provider said "context length exceeded": shrink this model's budget so the next
        ``prepare`` fits (a stated limit becomes the window; a stated size raises the ratio).
        ``max_tokens`` of the refused request separates the prompt from a stated total; what is
        learned recovers over time (see :mod:`botframework.budget.calibration`)."""
        self.calibration.learn_overflow(
            model_name,
            configured_window=model.context_window,
            estimated=estimated_prompt_tokens,
            limit=error.limit,
            requested=error.requested,
            max_tokens=max_tokens,
        )

    def system_prompt_problem(self, model: ModelConfig, agent: AgentConfig) -> str | None:
        """For check-config: why the system prompt (+ output floor + margin) cannot fit, or None."""
        return system_prompt_problem(self.counter, self.encodings, model, agent)

    # -- fitting --

    def _summary_room(self, encoding: tiktoken.Encoding, history: HistoryConfig) -> int:
        return self.counter.cached_text(encoding, f"\n\n{SUMMARY_HEADER}\n") + history.summary_max_tokens + 4

    def _normalize(
        self, messages: Sequence[Message], model: ModelConfig, encoding: tiktoken.Encoding
    ) -> tuple[list[Message], list[Message], int]:
        """Repair tool blocks, then adapt to the model. Returns (repaired, adapted, dropped);
        ``adapted`` is index-aligned with ``repaired`` and carries the counts as sent."""
        repaired, dropped = repair_tool_blocks(messages)
        out = repaired
        if not model.supports_images:
            out = [
                replace(
                    m.without_images(IMAGE_NOTE),
                    token_count=message_cost(m) + self.counter.image_strip_delta(encoding, m),
                )
                if m.images
                else m
                for m in out
            ]
        if not model.supports_tools:
            out = flatten_tool_messages(out, lambda m: self.counter.message(encoding, m))
        return repaired, out, dropped

    async def prepare(
        self,
        *,
        conversation_id: int,
        turn_id: str,
        model_name: str,
        model: ModelConfig,
        agent: AgentConfig,
        tools: Sequence[ToolSpec],
        summarizer: Summarizer | None = None,
    ) -> PreparedRequest:
        """Load (window-bounded, in SQL) -> normalize -> fit -> reserve, for the model about to be called.

        Raises InputTooLargeError when the protected part alone cannot fit (nothing is sent), and
        LookupError when ``turn_id`` has no stored message in the conversation.
        """
        encoding = self.encoding(model)
        limits = self.limits(model_name=model_name, model=model, agent=agent)
        hist = agent.history
        summarize = hist.strategy == "summarize"
        offered = tuple(tools) if model.supports_tools else ()
        tools_raw = self.counter.tools(encoding, offered)
        system_raw = self.counter.cached_text(encoding, agent.system_prompt)
        fixed_raw = system_raw + tools_raw + REPLY_PRIMING
        dropped = 0

        async with self.source.reader() as reader:
            tail = await reader.turn_tail(conversation_id=conversation_id, turn_id=turn_id)
            current_rows, stragglers = _split_tail(tail, turn_id)
            if not current_rows:
                raise LookupError(f"turn {turn_id!r} has no stored messages in conversation {conversation_id}")
            repaired, adapted, n = self._normalize(current_rows, model, encoding)
            dropped += n
            costs = [message_cost(m) for m in adapted]
            kept = trim_running_turn(repaired, limits.max_prompt_raw - fixed_raw, costs)
            if kept is None:
                needed = limits.provider_tokens(fixed_raw + protected_cost(repaired, costs))
                raise InputTooLargeError(
                    model=model_name,
                    needed=needed,
                    available=limits.window - limits.margin - limits.floor,
                    what="the system prompt, tool schemas and current input",
                )
            current = [adapted[i] for i in kept]
            dropped += len(adapted) - len(kept)
            current_raw = sum(message_cost(m) for m in current)

            summary: SummaryRecord | None = None
            summary_room = 0
            if summarize:
                summary_room = self._summary_room(encoding, hist)
                if fixed_raw + summary_room + current_raw > limits.max_prompt_raw:
                    summary_room = 0  # the summary does not fit next to this input: left out this time
                else:
                    summary = await reader.latest_summary(conversation_id=conversation_id)

            start = current_rows[0]
            start_id, start_offset = start.id or 0, start.offset or 0
            budget = limits.prompt_room_raw - fixed_raw - summary_room - current_raw
            nominal = limits.window - limits.margin - limits.reserve - fixed_raw - summary_room
            key = (conversation_id, model_name)
            cut = choose_cut(
                history_end=start_offset,
                tail_tokens=sum(message_cost(m) for m in stragglers),
                budget=budget,
                chunk=chunk_size(nominal, hist.fill_ratio),
                floor_offset=summary.upto_offset if summary is not None else 0,
                previous_cut=self._last_cuts.get(key),
                fill_ratio=hist.fill_ratio,
            )
            rows: list[Message] = []
            if cut < start_offset:
                rows = await reader.history_window(
                    conversation_id=conversation_id,
                    min_offset=cut,
                    max_offset=start_offset,
                    before_id=start_id,
                )

        turns, n = group_turns([*rows, *stragglers])
        dropped += n
        kept_turns: list[list[Message]] = []
        for turn in turns:
            _, msgs, n = self._normalize(turn, model, encoding)
            dropped += n
            if msgs:
                kept_turns.append(msgs)
        turn_costs = [sum(message_cost(m) for m in t) for t in kept_turns]
        history_raw = sum(turn_costs)
        while kept_turns and (kept_turns[0][0].role != "user" or history_raw > budget):
            dropped += len(kept_turns[0])
            history_raw -= turn_costs.pop(0)
            kept_turns.pop(0)
        history = [m for t in kept_turns for m in t]

        summary_used = summary
        if summarize and summary_room and summarizer is not None:
            first_kept = history[0] if history else start
            covered = summary.upto_offset if summary is not None else 0
            if (first_kept.offset or 0) > covered and not self._recently_failed(conversation_id):
                new = await summarize_dropped(
                    source=self.source,
                    conversation_id=conversation_id,
                    previous=summary,
                    upto_offset=first_kept.offset or 0,
                    upto_message_id=first_kept.id or 0,
                    summarizer=summarizer,
                    counter=self.counter,
                    encoding=encoding,
                    chunk_tokens=summary_chunk_tokens(summarizer, limits.window, hist.summary_max_tokens),
                    max_tokens=hist.summary_max_tokens,
                    timeout_s=hist.summary_timeout_s,
                    model_name=model_name,
                )
                if new is not None:
                    summary_used = new
                else:
                    self._summary_failures[conversation_id] = time.monotonic()
                    if len(self._summary_failures) > _LAST_CUTS:
                        self._summary_failures.popitem(last=False)
        system, summary_id = self._system_text(encoding, agent.system_prompt, summary_used, system_raw, summary_room)

        prompt_raw = self.counter.cached_text(encoding, system) + tools_raw + REPLY_PRIMING + history_raw + current_raw
        max_tokens = limits.max_tokens_for(prompt_raw)
        while max_tokens < limits.floor and history:  # defensive: the arithmetic above should prevent it
            first_turn = kept_turns.pop(0)
            history = history[len(first_turn) :]
            cost = sum(message_cost(m) for m in first_turn)
            history_raw -= cost
            prompt_raw -= cost
            dropped += len(first_turn)
            max_tokens = limits.max_tokens_for(prompt_raw)
        if max_tokens < limits.floor:
            raise InputTooLargeError(
                model=model_name,
                needed=limits.provider_tokens(prompt_raw),
                available=limits.window - limits.margin - limits.floor,
                what="the system prompt, summary, tool schemas and current input",
            )

        self._last_cuts[key] = cut
        self._last_cuts.move_to_end(key)
        if len(self._last_cuts) > _LAST_CUTS:
            self._last_cuts.popitem(last=False)
        return PreparedRequest(
            system=system,
            messages=(*history, *current),
            tools=offered,
            max_tokens=max_tokens,
            estimated_prompt_tokens=prompt_raw,
            history_start_offset=(history[0].offset or 0) if history else start_offset,
            dropped_messages=dropped,
            summary_id=summary_id,
            history_tokens=history_raw,
            history_budget=max(0, budget),
            window=limits.window,
            margin=limits.margin,
            ratio=limits.ratio,
        )

    def _system_text(
        self,
        encoding: tiktoken.Encoding,
        prompt: str,
        summary: SummaryRecord | None,
        prompt_raw: int,
        room: int,
    ) -> tuple[str, int | None]:
        """The system text with the summary, kept within the room reserved for the summary."""
        if summary is None or not room:
            return prompt, None
        system = compose_system(prompt, summary.text)
        if self.counter.cached_text(encoding, system) - prompt_raw <= room:
            return system, summary.id
        # Counted in another encoding when it was written: cut to fit this model's room.
        text = summary.text
        for _ in range(3):
            over = self.counter.cached_text(encoding, compose_system(prompt, text)) - prompt_raw - room
            if over <= 0:
                return compose_system(prompt, text), summary.id
            text = self.counter.truncate(encoding, text, max(0, self.counter.text(encoding, text) - over - 2))
        return prompt, None


def _split_tail(tail: Sequence[Message], turn_id: str) -> tuple[list[Message], list[Message]]:
    """Running turn vs. tails of earlier turns; later queued turns (starting after it) are left out."""
    current: list[Message] = []
    stragglers: list[Message] = []
    first_of: dict[str | None, Message] = {}
    for m in tail:
        if m.turn_id == turn_id:
            current.append(m)
            continue
        if not first_of.setdefault(m.turn_id, m).turn_start:
            stragglers.append(m)
    return current, stragglers
