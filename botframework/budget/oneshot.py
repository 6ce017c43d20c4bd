"""Fitting a one-shot request (instructions + input, no stored history) to a model's window.

The same arithmetic as a turn (:mod:`botframework.budget.reserve`): the prompt is counted in the
model's encoding, ``max_tokens`` is what the caller asked for, capped by the model's
``max_output_tokens``, half the (calibrated) window and what the prompt leaves; when even the
output floor does not fit, nothing is sent. There is no history to cut, so the caller must send
less.
"""

from __future__ import annotations

from dataclasses import replace

from botframework.budget.engine import BudgetEngine
from botframework.budget.reserve import Limits, output_floor, safety_margin
from botframework.budget.tokens import REPLY_PRIMING
from botframework.config.schema import ModelConfig
from botframework.errors import InputTooLargeError
from botframework.models.base import ModelRequest

__all__ = ["fit_one_shot", "one_shot_limits"]


def one_shot_limits(engine: BudgetEngine, *, model_name: str, model: ModelConfig, wanted: int) -> Limits:
    """The limits of a request to ``model_name`` that asks for ``wanted`` output tokens."""
    exact = engine.encodings.choose(model).exact
    window = engine.calibration.window(model_name, model.context_window)
    reserve = max(1, min(wanted, model.max_output_tokens, window // 2))
    return Limits(
        window=window,
        margin=safety_margin(engine.config, window=window, exact=exact),
        reserve=reserve,
        floor=output_floor(engine.config, reserve),
        ratio=engine.calibration.ratio(model_name),
        exact=exact,
    )


def fit_one_shot(engine: BudgetEngine, *, model_name: str, model: ModelConfig, request: ModelRequest) -> ModelRequest:
    """``request`` with its prompt counted and ``max_tokens`` fitted. Raises InputTooLargeError.

    Counting is CPU work proportional to the input: callers on the event loop run large inputs
    in a thread.
    """
    encoding = engine.encoding(model)
    counter = engine.counter
    prompt_raw = (
        counter.text(encoding, request.system)
        + sum(counter.message(encoding, m) for m in request.messages)
        + counter.tools(encoding, request.tools)
        + REPLY_PRIMING
    )
    limits = one_shot_limits(engine, model_name=model_name, model=model, wanted=request.max_tokens)
    max_tokens = limits.max_tokens_for(prompt_raw)
    if max_tokens < limits.floor:
        raise InputTooLargeError(
            model=model_name,
            needed=limits.provider_tokens(prompt_raw),
            available=limits.window - limits.margin - limits.floor,
            what="the instructions and input of this model call",
        )
    return replace(request, max_tokens=max_tokens, estimated_prompt_tokens=prompt_raw)
