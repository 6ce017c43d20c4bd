"""The context budget engine: exact, tool-safe, window-bounded history fitting.

The invocation service calls :class:`BudgetEngine` before every model call::

    engine = BudgetEngine(config=config.budget, db=db)
    count = engine.count_message(model, message)           # once, stored in messages.token_count
    prepared = await engine.prepare(conversation_id=..., turn_id=..., model_name="main", model=model,
                                    agent=agent, tools=tools, summarizer=summarizer)
    response = await client.complete(prepared.to_request(temperature=agent.temperature))
    engine.observe_usage(model_name="main", model=model,
                         estimated_prompt_tokens=prepared.estimated_prompt_tokens,
                         reported_input_tokens=response.usage.input_tokens)

Every prepared request satisfies the invariants checked in :mod:`botframework.budget.engine`: the
prompt plus ``max_tokens`` plus the safety margin fits the model's (learned) window, ``max_tokens``
is never below the output floor, and tool calls and their results are never split.
"""

from botframework.budget.calibration import Calibration
from botframework.budget.checks import prompt_fit_problem, system_prompt_problem, system_prompt_problems
from botframework.budget.compaction import SUMMARY_HEADER, Summarizer, compose_system
from botframework.budget.engine import BudgetEngine, PreparedRequest
from botframework.budget.normalize import (
    alternation_groups,
    alternation_violations,
    repair_tool_blocks,
    tool_protocol_violations,
)
from botframework.budget.reserve import Limits, output_reserve
from botframework.budget.sources import HistorySource, InMemoryHistory, MessageCache, SqlHistorySource
from botframework.budget.tokens import FALLBACK_ENCODING, EncodingRegistry, TokenCounter

__all__ = [
    "FALLBACK_ENCODING",
    "SUMMARY_HEADER",
    "BudgetEngine",
    "Calibration",
    "EncodingRegistry",
    "HistorySource",
    "InMemoryHistory",
    "Limits",
    "MessageCache",
    "PreparedRequest",
    "SqlHistorySource",
    "Summarizer",
    "TokenCounter",
    "alternation_groups",
    "alternation_violations",
    "compose_system",
    "output_reserve",
    "prompt_fit_problem",
    "repair_tool_blocks",
    "system_prompt_problem",
    "system_prompt_problems",
    "tool_protocol_violations",
]
