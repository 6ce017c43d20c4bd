"""Normalization of neutral messages before they are sent, and the tool-protocol checks.

Providers build their wire shape (OpenAI ``tool`` messages; Anthropic ``tool_use``/``tool_result``
blocks with strict role alternation) from what this module returns, so it guarantees:

- every assistant tool call is immediately followed by exactly one result per call, in call
  order (:func:`tool_protocol_violations` checks this);
- a result never appears without its call: orphan results and calls lacking results are dropped
  as whole blocks — nothing is ever fabricated;
- a user message steered in between a call and its results (stored order ``assistant(calls),
  user, tool``) is moved after the block instead of being dropped;
- history handed over starts at a turn start that is a user message, so Anthropic's
  "first message is from the user" holds and :func:`alternation_groups` alternates strictly;
- media a model cannot take is replaced by a note, and a model without tool support gets tool
  blocks rewritten as plain text.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal

from botframework.messages import ContentPart, Message, TextPart

__all__ = [
    "alternation_groups",
    "alternation_violations",
    "flatten_tool_messages",
    "group_turns",
    "is_empty",
    "repair_tool_blocks",
    "tool_blocks",
    "tool_protocol_violations",
]

AltRole = Literal["user", "assistant"]


def is_empty(message: Message) -> bool:
    """No content and no tool calls: providers reject such messages."""
    return not message.tool_calls and not any(not isinstance(p, TextPart) or p.text for p in message.content)


def repair_tool_blocks(messages: Sequence[Message]) -> tuple[list[Message], int]:
    """Put each tool call's results right after it, in call order; drop what cannot be paired.

    Returns the repaired list and how many messages were dropped. Messages found between a call
    and its results (a user message steered in mid-turn, say) follow the completed block. A call
    whose results are not all there, a message calling one id twice, results nobody called and
    duplicate results are dropped; empty non-tool messages too.
    """
    n = len(messages)
    results: dict[str, deque[int]] = defaultdict(deque)
    calls_at: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(messages):
        if m.role == "tool" and m.tool_call_id is not None:
            results[m.tool_call_id].append(i)
        elif m.role == "assistant":
            for call in m.tool_calls:
                calls_at[call.id].append(i)
    consumed = [False] * n
    out: list[Message] = []
    dropped = 0
    for i, m in enumerate(messages):
        if consumed[i]:
            continue
        if m.role == "tool":
            dropped += 1
            continue
        if m.role == "assistant" and m.tool_calls:
            block = _complete_block(i, m, results, calls_at)
            if block is None:
                dropped += 1
                continue
            out.append(m)
            for call, j in zip(m.tool_calls, block, strict=True):
                results[call.id].popleft()
                consumed[j] = True
                out.append(messages[j])
            continue
        if is_empty(m):
            dropped += 1
            continue
        out.append(m)
    return out, dropped


def _complete_block(
    i: int, m: Message, results: dict[str, deque[int]], calls_at: dict[str, list[int]]
) -> list[int] | None:
    ids = [c.id for c in m.tool_calls]
    if len(set(ids)) != len(ids):
        return None
    found: list[int] = []
    for cid in ids:
        queue = results.get(cid)
        while queue and queue[0] < i:
            queue.popleft()
        if not queue:
            return None
        j = queue[0]
        positions = calls_at[cid]
        k = bisect_right(positions, i)
        if k < len(positions) and positions[k] < j:
            return None  # the result belongs to a later call that reuses the id
        found.append(j)
    return found


def group_turns(messages: Sequence[Message]) -> tuple[list[list[Message]], int]:
    """Group messages (in id order) by turn, turns ordered by their first message.

    A turn whose first message here is not a turn start began before the loaded range: it is
    dropped whole (returned count), so history is only ever cut between whole turns.
    """
    turns: dict[str | None, list[Message]] = {}
    for m in messages:
        turns.setdefault(m.turn_id, []).append(m)
    kept: list[list[Message]] = []
    dropped = 0
    for msgs in turns.values():
        if msgs[0].turn_start:
            kept.append(msgs)
        else:
            dropped += len(msgs)
    return kept, dropped


def tool_blocks(messages: Sequence[Message]) -> list[list[Message]]:
    """Split a repaired list into units: one tool block (call + results) or one other message."""
    units: list[list[Message]] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        width = 1 + (len(m.tool_calls) if m.role == "assistant" else 0)
        units.append(list(messages[i : i + width]))
        i += width
    return units


def flatten_tool_messages(messages: Sequence[Message], recount: Callable[[Message], int]) -> list[Message]:
    """For a model without tool support: calls and results become plain text (repaired input).

    The calls stay visible to the model as what they were; nothing new is claimed. Changed
    messages get their token count from ``recount``.
    """
    names: dict[str, str] = {}
    out: list[Message] = []
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            parts: list[ContentPart] = list(m.content)
            for call in m.tool_calls:
                names[call.id] = call.name
                parts.append(TextPart(f"\n[called tool {call.name} with arguments {call.arguments}]"))
            flat = replace(m, content=tuple(parts), tool_calls=())
        elif m.role == "tool":
            name = m.name or names.get(m.tool_call_id or "", "a tool")
            label = f"[error from tool {name}]\n" if m.is_error else f"[result of tool {name}]\n"
            flat = replace(
                m,
                role="user",
                content=(TextPart(label), *m.content),
                tool_call_id=None,
                name=None,
                is_error=False,
            )
        else:
            out.append(m)
            continue
        out.append(replace(flat, token_count=recount(flat)))
    return out


def tool_protocol_violations(messages: Sequence[Message]) -> list[str]:
    """Every way ``messages`` break the tool protocol; [] when it holds.

    The protocol: each assistant message with tool calls is followed immediately by one tool
    result per call, in call order, with no duplicate call ids; no tool result anywhere else; tool
    calls only on assistant messages, ``tool_call_id`` only on tool results.
    """
    problems: list[str] = []
    i = 0
    n = len(messages)
    while i < n:
        m = messages[i]
        if m.role == "tool":
            problems.append(f"message {i}: tool result {m.tool_call_id!r} without its call right before it")
            i += 1
            continue
        if m.tool_call_id is not None:
            problems.append(f"message {i}: {m.role} message carries tool_call_id {m.tool_call_id!r}")
        if m.tool_calls and m.role != "assistant":
            problems.append(f"message {i}: {m.role} message carries tool calls")
        if m.role != "assistant" or not m.tool_calls:
            i += 1
            continue
        ids = [c.id for c in m.tool_calls]
        if len(set(ids)) != len(ids):
            problems.append(f"message {i}: duplicate tool call ids {ids}")
        j = i + 1
        for cid in ids:
            if j >= n or messages[j].role != "tool":
                problems.append(f"message {i}: tool call {cid!r} has no result right after it")
                break
            if messages[j].tool_call_id != cid:
                problems.append(f"message {j}: result for {messages[j].tool_call_id!r} where {cid!r} was expected")
            j += 1
        i = j
    return problems


def alternation_groups(messages: Sequence[Message]) -> list[tuple[AltRole, tuple[Message, ...]]]:
    """Consecutive messages merged by Anthropic role (tool results are ``user``), in order.

    A provider that needs strict alternation sends each group as one message; after
    normalization each group that answers tool calls starts with those results.
    """
    groups: list[tuple[AltRole, list[Message]]] = []
    for m in messages:
        role: AltRole = "assistant" if m.role == "assistant" else "user"
        if groups and groups[-1][0] == role:
            groups[-1][1].append(m)
        else:
            groups.append((role, [m]))
    return [(role, tuple(msgs)) for role, msgs in groups]


def alternation_violations(messages: Sequence[Message]) -> list[str]:
    """Problems Anthropic would reject once ``messages`` are merged into alternating groups."""
    problems: list[str] = []
    groups = alternation_groups(messages)
    if groups and groups[0][0] != "user":
        problems.append("the first message is not from the user")
    for g, (role, msgs) in enumerate(groups):
        if role != "assistant":
            continue
        calls = [c.id for m in msgs for c in m.tool_calls]
        if calls and not msgs[-1].tool_calls:
            problems.append(f"group {g}: tool calls are followed by more assistant content")
        if not calls:
            continue
        following = groups[g + 1][1] if g + 1 < len(groups) else ()
        answered = [m.tool_call_id for m in following[: len(calls)] if m.role == "tool"]
        if answered != calls:
            problems.append(f"group {g}: calls {calls} are not answered first by the next user turn ({answered})")
    return problems
