"""Summaries for ``history.strategy: summarize``: the budget engine decides what to summarize and
when; this asks the model, through the same router (retries, fallbacks, ledger) as any call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botframework.calls import CallRecorder
from botframework.messages import Message
from botframework.models.base import ModelRequest
from botframework.tools.base import ToolContext

if TYPE_CHECKING:
    from botframework.invocation import AgentRuntime, InvocationService

__all__ = ["SUMMARY_INSTRUCTIONS", "ModelSummarizer"]

SUMMARY_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between a user and an assistant. Merge the "
    "previous summary (if any) with the new transcript into one concise summary that keeps facts, "
    "decisions, names, numbers, open questions and the user's preferences. Write plain prose, no preamble."
)


class ModelSummarizer:
    """Implements the budget engine's Summarizer protocol for one turn."""

    def __init__(self, *, service: InvocationService, agent: AgentRuntime, ctx: ToolContext) -> None:
        self.service = service
        self.agent = agent
        self.ctx = ctx
        self.model_name = agent.agent.history.summary_model or agent.agent.model
        self.context_window = service.config.models[self.model_name].context_window
        """Read by the budget engine to size transcript chunks for the summarizing model."""

    async def __call__(self, *, transcript: str, previous_summary: str | None, max_tokens: int) -> str:
        body = (f"Previous summary:\n{previous_summary}\n\n" if previous_summary else "") + (
            f"New transcript:\n{transcript}"
        )
        model_name = self.model_name
        request = ModelRequest(system=SUMMARY_INSTRUCTIONS, messages=(Message.user(body),), max_tokens=max_tokens)

        async def build(_name: str) -> ModelRequest:
            return request

        async def no_overflow(*_args: object) -> None:
            return None

        svc = self.service
        observer = CallRecorder(
            budget=svc.budget,
            ledger=svc.ledger,
            events=svc.events,
            models=svc.config.models,
            ctx=self.ctx,
            purpose="summary",
        )
        routed = await self.service.router.call(
            candidates=[model_name], build=build, on_overflow=no_overflow, observer=observer
        )
        return routed.response.text.strip()
