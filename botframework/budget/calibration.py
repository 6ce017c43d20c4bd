"""What we learn per model from the provider: a count correction ratio and the real window.

Two sources, both per model name, in memory (each process learns again after a restart; a few
calls are enough):

- **Usage.** ``reported_input_tokens / estimated_prompt_tokens`` after each successful call. The
  ratio follows the samples with an asymmetric moving average (quick to rise, slow to fall: an
  underestimate overflows the window, an overestimate only wastes a little of it) and is clamped
  to ``BudgetConfig.calibration_bounds``.
- **Overflow.** A "context length exceeded" answer proves our estimate was too low for this
  model. If the provider stated the limit it becomes the window; if it stated the requested size,
  ``requested / estimate`` is an upper bound of the true ratio (it may include the output
  reserve) and becomes a floor under the ratio; with neither, the ratio floor steps up 15%.
  The floor may exceed the calibration bounds (up to :data:`MAX_OVERFLOW_RATIO`) because it is
  evidence, not noise; successful calls lower it again gradually.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

__all__ = ["MAX_OVERFLOW_RATIO", "MIN_SAMPLE_TOKENS", "Calibration", "ModelCalibration"]

log = logging.getLogger("botframework.budget")

MAX_OVERFLOW_RATIO = 4.0
MIN_SAMPLE_TOKENS = 32
"""Smaller prompts are dominated by the provider's fixed overheads: not used as samples."""
_RISE = 0.5
_FALL = 0.1
_FLOOR_DECAY = 0.95
_UNKNOWN_OVERFLOW_STEP = 1.15


@dataclass(slots=True)
class ModelCalibration:
    ratio: float = 1.0
    """Provider tokens per counted token, from usage (bounded)."""
    overflow_floor: float | None = None
    """Lower bound on the ratio learned from overflow errors."""
    window_limit: int | None = None
    """A window smaller than configured, as stated by the provider."""
    samples: int = 0
    overflows: int = 0

    @property
    def effective_ratio(self) -> float:
        return max(self.ratio, self.overflow_floor or 0.0)


class Calibration:
    """Per-model correction state; cheap reads on the hot path."""

    def __init__(self, *, bounds: tuple[float, float]) -> None:
        low, high = bounds
        if not (0 < low <= 1.0 <= high):
            raise ValueError(f"calibration_bounds must satisfy 0 < low <= 1 <= high, got {bounds}")
        self.bounds = (low, high)
        self._models: dict[str, ModelCalibration] = {}

    def state(self, model_name: str) -> ModelCalibration:
        found = self._models.get(model_name)
        if found is None:
            found = self._models[model_name] = ModelCalibration()
        return found

    def ratio(self, model_name: str) -> float:
        found = self._models.get(model_name)
        return found.effective_ratio if found is not None else 1.0

    def window(self, model_name: str, configured: int) -> int:
        found = self._models.get(model_name)
        if found is None or found.window_limit is None:
            return configured
        return min(configured, found.window_limit)

    def observe(self, model_name: str, *, estimated: int, reported: int) -> None:
        if estimated < MIN_SAMPLE_TOKENS or reported <= 0:
            return
        st = self.state(model_name)
        sample = reported / estimated
        weight = _RISE if sample > st.ratio else _FALL
        low, high = self.bounds
        st.ratio = min(high, max(low, st.ratio + weight * (sample - st.ratio)))
        st.samples += 1
        if st.overflow_floor is not None:
            st.overflow_floor = max(sample, st.overflow_floor * _FLOOR_DECAY)
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
    ) -> None:
        st = self.state(model_name)
        st.overflows += 1
        current = st.effective_ratio
        window = self.window(model_name, configured_window)
        new_window = limit is not None and 0 < limit < window
        if new_window:
            st.window_limit = limit
        if requested is not None and requested > 0 and estimated > 0:
            target = max(current * 1.05, requested / estimated * 1.02)
        elif new_window:
            target = current
        else:
            target = current * _UNKNOWN_OVERFLOW_STEP
        target = min(MAX_OVERFLOW_RATIO, target)
        if target > current:
            st.overflow_floor = max(st.overflow_floor or 0.0, target)
        log.warning(
            "model %s overflowed its context (estimate %d, provider limit %s, requested %s): "
            "window now %d, count ratio %.3f",
            model_name,
            estimated,
            limit,
            requested,
            self.window(model_name, configured_window),
            st.effective_ratio,
        )

    @staticmethod
    def to_provider(raw: int, ratio: float) -> int:
        """Counted tokens -> provider tokens (rounded up: never underestimate)."""
        return math.ceil(raw * ratio - 1e-9)

    @staticmethod
    def to_raw(provider: int, ratio: float) -> int:
        """Provider tokens -> counted tokens (rounded down)."""
        return math.floor(provider / ratio + 1e-9)
