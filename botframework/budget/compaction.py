"""Compaction: summarize history that leaves the window (``history.strategy: summarize``).

When the cut moves past what the latest summary covers, the newly dropped messages are
rendered as a plain transcript and folded into the summary by the agent's summarizer, chunk by
chunk (each call gets the previous summary and one chunk). The new summary is stored with the
range it covers (``upto_offset``/``upto_message_id``: everything before the kept history).

Work per turn is bounded: at most :data:`MAX_SUMMARY_CHUNKS` summarizer calls of at most
``chunk_tokens`` each (``min(window / 2, 32k) - summary_max_tokens``). If more than that was
dropped at once (a long conversation switched to ``summarize``, or a much smaller model), only
the newest part is summarized; older messages are left out as with ``trim``.

The whole step runs under ``asyncio.timeout(history.summary_timeout_s)``. On timeout or any
error it logs a warning and returns None: the turn goes on with plain trimming (and the previous
summary, which is still true), so summarizing can delay a turn but never hang or lose it. After a
failure the engine does not summarize that conversation again for ``SUMMARY_RETRY_AFTER_S``
(5 minutes), so the other model calls of a tool loop are not delayed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

import tiktoken

from botframework.budget.sources import HistorySource
from botframework.budget.tokens import TokenCounter
from botframework.messages import Message
from storage.summaries import SummaryRecord

__all__ = [
    "MAX_CHUNK_TOKENS",
    "MAX_SUMMARY_CHUNKS",
    "SUMMARY_HEADER",
    "Summarizer",
    "compose_system",
    "render_message",
    "summarize_dropped",
    "summary_chunk_tokens",
    "transcript_chunks",
]

log = logging.getLogger("botframework.budget")

SUMMARY_HEADER = "Summary of the earlier part of this conversation (those messages are not shown):"
MAX_SUMMARY_CHUNKS = 4
MAX_CHUNK_TOKENS = 32_000
_OMITTED = "[earlier messages omitted]"


class Summarizer(Protocol):
    """Writes a summary with a model. Given by the invocation service, bound to the summary model.

    If the object has an ``context_window`` attribute (the summary model's window, an int), each
    transcript chunk is sized for it; otherwise for the window of the model being prepared.
    """

    async def __call__(self, *, transcript: str, previous_summary: str | None, max_tokens: int) -> str: ...


def summary_chunk_tokens(summarizer: Summarizer, window: int, max_tokens: int) -> int:
    """Transcript tokens per summarizer call: half the summary model's window (at most 32k), less
    the summary itself."""
    own = getattr(summarizer, "context_window", None)
    if isinstance(own, int) and own > 0:
        window = own
    return max(512, min(window // 2, MAX_CHUNK_TOKENS) - max_tokens)


def compose_system(system_prompt: str, summary: str | None) -> str:
    """The system text sent: the prompt, then the summary block when there is one."""
    if not summary:
        return system_prompt
    return f"{system_prompt}\n\n{SUMMARY_HEADER}\n{summary}"


def render_message(message: Message) -> str:
    """One transcript entry: who said what, tool calls and results as text, images as a note."""
    body = message.text
    if message.images:
        body = f"{body} [{len(message.images)} image(s)]".strip()
    if message.role == "assistant":
        calls = "".join(f"\n[called {c.name}({c.arguments})]" for c in message.tool_calls)
        return f"Assistant: {body}{calls}".rstrip()
    if message.role == "tool":
        label = "Tool error" if message.is_error else "Tool result"
        return f"{label} ({message.name or message.tool_call_id}): {body}"
    who = f"User {message.name}" if message.name else "User"
    return f"{who}: {body}"


def transcript_chunks(
    messages: Sequence[Message], *, chunk_tokens: int, counter: TokenCounter, encoding: tiktoken.Encoding
) -> list[str]:
    """Split the rendered messages into transcripts of at most about ``chunk_tokens`` tokens.

    Sizes come from the stored counts (no tokenizing); one message larger than a chunk is cut.
    """
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for m in messages:
        text = render_message(m)
        cost = (m.token_count or 0) + 8
        if cost > chunk_tokens:
            text = counter.truncate(encoding, text, chunk_tokens - 16) + " [...]"
            cost = chunk_tokens
        if current and size + cost > chunk_tokens:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(text)
        size += cost
    if current:
        chunks.append("\n\n".join(current))
    return chunks


async def summarize_dropped(
    *,
    source: HistorySource,
    conversation_id: int,
    previous: SummaryRecord | None,
    upto_offset: int,
    upto_message_id: int,
    summarizer: Summarizer,
    counter: TokenCounter,
    encoding: tiktoken.Encoding,
    chunk_tokens: int,
    max_tokens: int,
    timeout_s: float,
    model_name: str,
) -> SummaryRecord | None:
    """Fold the messages before ``upto_offset`` not yet covered into a new stored summary.

    Returns the new summary, or None (logged) when it failed or timed out.
    """
    start = previous.upto_offset if previous is not None else 0
    min_offset = max(start, upto_offset - chunk_tokens * MAX_SUMMARY_CHUNKS)
    try:
        async with asyncio.timeout(timeout_s):
            async with source.reader() as reader:
                rows = await reader.offset_range(
                    conversation_id=conversation_id,
                    min_offset=min_offset,
                    max_offset=upto_offset,
                    before_id=upto_message_id,
                )
            if not rows:
                return None
            chunks = transcript_chunks(rows, chunk_tokens=chunk_tokens, counter=counter, encoding=encoding)
            omitted = min_offset > start or len(chunks) > MAX_SUMMARY_CHUNKS
            chunks = chunks[-MAX_SUMMARY_CHUNKS:]
            if omitted:
                chunks[0] = f"{_OMITTED}\n\n{chunks[0]}"
            text = previous.text if previous is not None else None
            for chunk in chunks:
                text = (await summarizer(transcript=chunk, previous_summary=text, max_tokens=max_tokens)).strip()
                if not text:
                    raise ValueError("the summarizer returned an empty summary")
            assert text is not None
            text = counter.truncate(encoding, text, max_tokens)
            return await source.add_summary(
                conversation_id=conversation_id,
                upto_offset=upto_offset,
                upto_message_id=upto_message_id,
                text=text,
                token_count=counter.text(encoding, text),
                model=model_name,
            )
    except TimeoutError:
        log.warning(
            "summarizing conversation %s up to offset %d took longer than %.1fs; trimming instead",
            conversation_id,
            upto_offset,
            timeout_s,
        )
    except Exception as exc:  # a summarizer is a model call: any failure means "trim this turn"
        log.warning(
            "summarizing conversation %s up to offset %d failed (%s: %s); trimming instead",
            conversation_id,
            upto_offset,
            type(exc).__name__,
            exc,
        )
    return None
