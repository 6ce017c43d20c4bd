"""What we learn per model from the provider: a count correction ratio and the real window.

Two sources, both per model name, in memory (each process learns again after a restart; a few
calls are enough):

- **Usage.** ``reported_input_tokens / estimated_prompt_tokens`` after each successful call. The
  ratio follows the samples with an asymmetric moving average (quick to rise, slow to fall: an
  underestimate overflows the window, an overestimate only wastes a little of it) and is clamped
  to ``BudgetConfig.calibration_bounds``.
- **Overflow.** A "context length exceeded" answer proves our estimate was too low for this
  model. If the provider stated the limit it becomes the window (never less: the provider's own
  figure is the authority). If it stated the requested size, the prompt part of it (the request's
  ``max_tokens`` taken out when the provider counted it in) over our estimate is a lower bound of
  the true ratio and becomes a floor under the ratio. A figure no counting error can explain (a
  ratio above :data:`MAX_OVERFLOW_RATIO`) is not taken as one; it, or an overflow with no figures,
  steps the floor up 15%. The floor may exceed the calibration bounds because it is evidence, not
  noise.

What an overflow taught recovers, so a burst of odd answers cannot shrink a model for good: the
floor and a learned window hold for :data:`RECOVERY_HOLD_S`, then decay back (half-life
:data:`RECOVERY_HALF_LIFE_S`) to the usage ratio and the configured window; a successful call
as large as the one that overflowed drops the floor, and one whose reported prompt exceeds the
learned window drops that window. A real limit shows up again as one more overflow, which the
router answers by rebuilding the request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "MAX_OVERFLOW_RATIO",
    "MIN_SAMPLE_TOKENS",
    "RECOVERY_HALF_LIFE_S",
    "RECOVERY_HOLD_S",
    "Calibration",
    "ModelCalibration",
]

log = logging.getLogger("botframework.budget")

MAX_OVERFLOW_RATIO = 4.0
MIN_SAMPLE_TOKENS = 32
"""Smaller prompts are dominated by the provider's fixed overheads: not used as samples."""
_RISE = 0.5
_FALL = 0.1
_FLOOR_DECAY = 0.95
_UNKNOWN_OVERFLOW_STEP = 1.15
RECOVERY_HOLD_S = 60.0
"""What an overflow taught holds unchanged this long (the retry and the next turns use it as is)."""
RECOVERY_HALF_LIFE_S = 300.0
"""Then it decays back: halfway after this long."""


@dataclass(slots=True)
class ModelCalibration:
    ratio: float = 1.0
    """Provider tokens per counted token, from usage (bounded)."""
    overflow_floor: float | None = None
    """Lower bound on the ratio learned from overflow errors, as learned at ``floor_at``."""
    floor_at: float = 0.0
    floor_estimate: int = 0
    """Our estimate of the prompt that overflowed: a success at least this large disproves the floor."""
    window_limit: int | None = None
    """A window smaller than configured, as stated by the provider at ``window_at``."""
    window_at: float = 0.0
    samples: int = 0
    overflows: int = 0


def _decayed(value: float, towards: float, elapsed: float) -> float:
    factor: float = 0.5 ** (max(0.0, elapsed - RECOVERY_HOLD_S) / RECOVERY_HALF_LIFE_S)
    return towards + (value - towards) * factor


class Calibration:
    """Per-model correction state; cheap reads on the hot path."""

    def __init__(self, *, bounds: tuple[float, float], clock: Callable[[], float] = time.monotonic) -> None:
        low, high = bounds
        if not (0 < low <= 1.0 <= high):
            raise ValueError(f"calibration_bounds must satisfy 0 < low <= 1 <= high, got {bounds}")
        self.bounds = (low, high)
        self.clock = clock
        """Time source of the recovery (tests move it)."""
        self._models: dict[str, ModelCalibration] = {}

    def state(self, model_name: str) -> ModelCalibration:
        found = self._models.get(model_name)
        if found is None:
            found = self._models[model_name] = ModelCalibration()
        return found

    def _floor(self, st: ModelCalibration) -> float | None:
        if st.overflow_floor is None:
            return None
        floor = _decayed(st.overflow_floor, st.ratio, self.clock() - st.floor_at)
        return floor if floor > st.ratio + 1e-3 else None

    def _ratio_of(self, st: ModelCalibration) -> float:
        floor = self._floor(st)
        return st.ratio if floor is None else max(st.ratio, floor)

    def ratio(self, model_name: str) -> float:
        found = self._models.get(model_name)
        return self._ratio_of(found) if found is not None else 1.0

    def window(self, model_name: str, configured: int) -> int:
        found = self._models.get(model_name)
        if found is None or found.window_limit is None or found.window_limit >= configured:
            return configured
        return int(_decayed(found.window_limit, configured, self.clock() - found.window_at))

    def observe(self, model_name: str, *, estimated: int, reported: int) -> None:
        if estimated < MIN_SAMPLE_TOKENS or reported <= 0:
            return
        st = self.state(model_name)
        sample = reported / estimated
        weight = _RISE if sample > st.ratio else _FALL
        low, high = self.bounds
        st.ratio = min(high, max(low, st.ratio + weight * (sample - st.ratio)))
        st.samples += 1
        if st.window_limit is not None and reported >= st.window_limit:
            st.window_limit = None  # the provider took a prompt as large as the window it stated
        floor = self._floor(st)
        if floor is None or estimated >= st.floor_estimate:
            st.overflow_floor = None
        else:
            st.overflow_floor, st.floor_at = max(sample, floor * _FLOOR_DECAY), self.clock()
            if st.overflow_floor <= st.ratio:
                st.overflow_floor = None

    def learn_overflow(
        self,
        model_name: str,
        *,
        configured_window: int,
        estimated: int,
        limit: int | None,
        requested: int | None,
        max_tokens: int | None = None,
    ) -> None:
        """Learn from one overflow of a request we estimated at ``estimated`` counted prompt tokens
        asking for ``max_tokens``; ``limit``/``requested`` as the provider stated them."""
        st = self.state(model_name)
        st.overflows += 1
        current = self._ratio_of(st)
        now = self.clock()
        new_window = limit is not None and 0 < limit < self.window(model_name, configured_window)
        if limit is not None and limit > 0:
            st.window_limit = limit if limit < configured_window else None
            st.window_at = now
        implied: float | None = None
        if requested is not None and requested > 0 and estimated > 0:
            prompt = requested - max_tokens if max_tokens and requested > max_tokens else requested
            implied = prompt / estimated
            if implied > MAX_OVERFLOW_RATIO:
                implied = None  # no counting error is that large: not evidence about our count
        if implied is not None:
            target = max(current * 1.05, implied * 1.02)
        elif new_window:
            target = current
        else:
            target = current * _UNKNOWN_OVERFLOW_STEP
        target = min(MAX_OVERFLOW_RATIO, target)
        if target > current:
            st.overflow_floor, st.floor_at = target, now
            st.floor_estimate = max(estimated, st.floor_estimate if self._floor(st) is not None else 0)
        log.warning(
            "model %s overflowed its context (estimate %d, max_tokens %s, provider limit %s, requested %s): "
            "window now %d, count ratio %.3f",
            model_name,
            estimated,
            max_tokens,
            limit,
            requested,
            self.window(model_name, configured_window),
            self._ratio_of(st),
        )

    @staticmethod
    def to_provider(raw: int, ratio: float) -> int:
        """Counted tokens -> provider tokens (rounded up: never underestimate)."""
        return math.ceil(raw * ratio - 1e-9)

    @staticmethod
    def to_raw(provider: int, ratio: float) -> int:
        """Provider tokens -> counted tokens (rounded down)."""
        return math.floor(provider / ratio + 1e-9)
