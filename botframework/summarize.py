"""Summaries for ``history.strategy: summarize``: the budget engine decides what to summarize and
when; this asks the model through a :class:`~botframework.modelcalls.ModelCalls` client, so a
summary call gets the same retries, fallbacks, fitting, ledger rows (purpose ``summary``) and
events as any other call."""

from __future__ import annotations

from botframework.config.schema import AgentConfig
from botframework.modelcalls import ModelCalls, ModelGateway
from botframework.tools.base import ToolContext

__all__ = ["SUMMARY_INSTRUCTIONS", "ModelSummarizer"]

SUMMARY_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between a user and an assistant. Merge the "
    "previous summary (if any) with the new transcript into one concise summary that keeps facts, "
    "decisions, names, numbers, open questions and the user's preferences. Write plain prose, no preamble."
)


class ModelSummarizer:
    """Implements the budget engine's Summarizer protocol for one turn."""

    def __init__(self, *, calls: ModelCalls, context_window: int) -> None:
        self.calls = calls
        self.context_window = context_window
        """Read by the budget engine to size transcript chunks for the summarizing model."""

    @classmethod
    def for_agent(cls, gateway: ModelGateway, ctx: ToolContext, agent: AgentConfig) -> ModelSummarizer:
        """Bound to ``history.summary_model`` (the agent's model when unset); no tier allowlist applies."""
        name = agent.history.summary_model or agent.model
        return cls(calls=gateway.client(ctx, candidates=[name]), context_window=gateway.models[name].context_window)

    async def __call__(self, *, transcript: str, previous_summary: str | None, max_tokens: int) -> str:
        body = (f"Previous summary:\n{previous_summary}\n\n" if previous_summary else "") + (
            f"New transcript:\n{transcript}"
        )
        answer = await self.calls.complete(
            instructions=SUMMARY_INSTRUCTIONS, input=body, purpose="summary", max_tokens=max_tokens
        )
        return answer.text.strip()
