"""Config-time check: the system prompt must fit each of the agent's models with room to answer."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from botframework.budget.reserve import output_floor, output_reserve, safety_margin
from botframework.budget.tokens import REPLY_PRIMING, TOKENS_PER_MESSAGE, EncodingRegistry, TokenCounter
from botframework.config.schema import AgentConfig, BudgetConfig, Config, ModelConfig

__all__ = ["prompt_fit_problem", "system_prompt_problem", "system_prompt_problems"]


def system_prompt_problem(
    counter: TokenCounter, encodings: EncodingRegistry, model: ModelConfig, agent: AgentConfig
) -> str | None:
    """Why ``agent.system_prompt`` plus the output floor and the safety margin cannot fit ``model``."""
    choice = encodings.choose(model)
    window = model.context_window
    margin = safety_margin(counter.config, window=window, exact=choice.exact)
    floor = output_floor(counter.config, output_reserve(counter.config, model, agent, window=window))
    prompt = counter.text(choice.encoding, agent.system_prompt) + TOKENS_PER_MESSAGE + 1 + REPLY_PRIMING
    needed = prompt + floor + margin
    if needed <= window:
        return None
    return (
        f"the system prompt is about {prompt} tokens; with the output floor ({floor}) and the safety "
        f"margin ({margin}) it needs {needed}, more than the context window of {model.model!r} ({window})"
    )


@functools.lru_cache(maxsize=8)
def _offline_counter(config: BudgetConfig) -> TokenCounter:
    return TokenCounter(config=config, encodings=EncodingRegistry(allow_download=False))


def prompt_fit_problem(config: BudgetConfig, model: ModelConfig, agent: AgentConfig) -> str | None:
    """:func:`system_prompt_problem` at config load: counts offline, never downloads an encoding."""
    counter = _offline_counter(config)
    return system_prompt_problem(counter, counter.encodings, model, agent)


def system_prompt_problems(config: Config) -> Iterator[tuple[str, str]]:
    """(YAML path, message) for every tenant whose system prompt cannot fit one of its models."""
    for tenant_name, tenant in config.tenants.items():
        agent = tenant.agent
        for model_name in dict.fromkeys([agent.model, *agent.fallback_models]):
            model = config.models.get(model_name)
            if model is None:
                continue
            problem = prompt_fit_problem(config.budget, model, agent)
            if problem is not None:
                yield f"tenants.{tenant_name}.agent.system_prompt", f"{problem} (models.{model_name})"
