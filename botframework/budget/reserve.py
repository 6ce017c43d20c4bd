"""The output reserve, the safety margin and the resulting limits of one request.

``reserve = min(agent.max_output_tokens or budget.default_output_cap, model.max_output_tokens,
window // 2)``; a request asks ``max_tokens = min(reserve, window - margin - prompt)`` and never
less than ``floor = min(budget.output_floor, reserve)`` (a window so small that half of it is
below the configured floor lowers the floor to that half).

Two units meet here: *counted* tokens (our tiktoken counts, as stored with each message) and
*provider* tokens (what the provider bills: counted x calibration ratio). The window, margin,
reserve and ``max_tokens`` are provider tokens; prompt parts are counted tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from botframework.budget.calibration import Calibration
from botframework.config.schema import AgentConfig, BudgetConfig, ModelConfig

__all__ = ["Limits", "output_floor", "output_reserve", "safety_margin"]


def output_reserve(config: BudgetConfig, model: ModelConfig, agent: AgentConfig, *, window: int) -> int:
    """Output tokens a request asks for when the prompt leaves room."""
    wanted = agent.max_output_tokens if agent.max_output_tokens is not None else config.default_output_cap
    return max(1, min(wanted, model.max_output_tokens, window // 2))


def output_floor(config: BudgetConfig, reserve: int) -> int:
    return min(config.output_floor, reserve)


def safety_margin(config: BudgetConfig, *, window: int, exact: bool) -> int:
    """Tokens kept free: ``safety_margin`` with the model's own encoding, ``fallback_margin`` without."""
    fraction = config.safety_margin if exact else config.fallback_margin
    return math.ceil(window * fraction)


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Everything that bounds one request to one model, in provider tokens unless named ``*_raw``."""

    window: int
    margin: int
    reserve: int
    floor: int
    ratio: float
    exact: bool

    @property
    def prompt_room(self) -> int:
        """Provider tokens the prompt may use while the full reserve stays available."""
        return self.window - self.margin - self.reserve

    @property
    def prompt_room_raw(self) -> int:
        return Calibration.to_raw(max(0, self.prompt_room), self.ratio)

    @property
    def max_prompt_raw(self) -> int:
        """Counted tokens the prompt may use at most (leaving only the output floor)."""
        return Calibration.to_raw(max(0, self.window - self.margin - self.floor), self.ratio)

    def provider_tokens(self, raw: int) -> int:
        return Calibration.to_provider(raw, self.ratio)

    def max_tokens_for(self, prompt_raw: int) -> int:
        """``max_tokens`` for a prompt of ``prompt_raw`` counted tokens (may be below the floor)."""
        return min(self.reserve, self.window - self.margin - self.provider_tokens(prompt_raw))

    def fits(self, prompt_raw: int) -> bool:
        return self.max_tokens_for(prompt_raw) >= self.floor
