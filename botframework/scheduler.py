"""Per-conversation ordering: one turn at a time per conversation, in arrival order.

Turns that arrive while one runs wait in the conversation's queue; the running turn takes them
(steering) before its next model call, so a conversation never has two concurrent turns. Whatever
is still waiting when the running turn ends becomes the next turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["ConversationScheduler"]

log = logging.getLogger("botframework.scheduler")


@dataclass
class _Conversation:
    waiting: deque[str] = field(default_factory=deque)
    running: str | None = None
    task: asyncio.Task[None] | None = None


class ConversationScheduler:
    def __init__(
        self, *, process: Callable[[int, str], Awaitable[None]], on_depth: Callable[[int], None] | None = None
    ) -> None:
        self._process = process
        self._on_depth = on_depth
        self._conversations: dict[int, _Conversation] = {}
        self._user_cancelled: set[str] = set()
        self._closed = False

    @property
    def depth(self) -> int:
        """Turns accepted and not finished (running + waiting)."""
        return sum(len(c.waiting) + (c.running is not None) for c in self._conversations.values())

    def _changed(self) -> None:
        if self._on_depth is not None:
            self._on_depth(self.depth)

    def submit(self, conversation_id: int, turn_id: str) -> None:
        if self._closed:
            return  # shutting down: the turn stays queued in the database and runs after restart
        conv = self._conversations.setdefault(conversation_id, _Conversation())
        if turn_id == conv.running or turn_id in conv.waiting:
            return
        conv.waiting.append(turn_id)
        if conv.task is None:
            conv.task = asyncio.create_task(self._worker(conversation_id, conv), name=f"conversation-{conversation_id}")
        self._changed()

    def take_waiting(self, conversation_id: int) -> list[str]:
        """Steering: hand every waiting turn of the conversation to the running one."""
        conv = self._conversations.get(conversation_id)
        if conv is None or not conv.waiting:
            return []
        taken = [t for t in conv.waiting if t not in self._user_cancelled]
        conv.waiting = deque(t for t in conv.waiting if t in self._user_cancelled)
        if taken:
            self._changed()
        return taken

    def cancel(self, turn_id: str) -> bool:
        """User cancel. A running turn is interrupted; a waiting one is still processed, and sees it."""
        for conv in self._conversations.values():
            if conv.running == turn_id and conv.task is not None:
                self._user_cancelled.add(turn_id)
                conv.task.cancel()
                return True
            if turn_id in conv.waiting:
                self._user_cancelled.add(turn_id)
                return True
        return False

    def cancelled_by_user(self, turn_id: str) -> bool:
        return turn_id in self._user_cancelled

    def mark_cancelled(self, turn_id: str, cancelled: bool = True) -> None:
        """A user cancel of a turn this process runs for a shared queue (not one of its own tasks)."""
        if cancelled:
            self._user_cancelled.add(turn_id)
        else:
            self._user_cancelled.discard(turn_id)

    async def _worker(self, conversation_id: int, conv: _Conversation) -> None:
        try:
            while conv.waiting:
                conv.running = conv.waiting.popleft()
                try:
                    await self._process(conversation_id, conv.running)
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if self._closed or task is None or conv.running not in self._user_cancelled:
                        raise
                    task.uncancel()  # a user cancel ends this turn only, not the conversation
                except Exception:
                    log.exception("turn %s of conversation %s crashed", conv.running, conversation_id)
                finally:
                    self._user_cancelled.discard(conv.running)
                    conv.running = None
                    self._changed()
        finally:
            conv.task = None
            if not conv.waiting and self._conversations.get(conversation_id) is conv:
                del self._conversations[conversation_id]

    async def close(self, timeout: float) -> int:
        """Stop taking turns, let running ones finish within ``timeout``, then cancel the rest.

        Cancelled turns stay open in the database and are recovered at the next start.
        Returns how many were cancelled.
        """
        self._closed = True
        tasks = [c.task for c in self._conversations.values() if c.task is not None]
        if not tasks:
            return 0
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        return len(pending)
