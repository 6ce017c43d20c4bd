"""The one-shot structured helper: one instruction + one input -> text, parsed JSON, usage.

For summaries, classification, extraction, and for tools that need a model. It goes through the
:class:`~botframework.models.router.ModelRouter` (retries, fallbacks, circuit breaker, ledger via
the observer) and never raises for a model failure; the result's ``error`` says what went wrong:

- ``tier_not_allowed``: no candidate's ``ModelConfig.tier`` is in ``allowed_tiers``;
- ``llm_unavailable``: every allowed candidate failed (or there was none, or the request was refused);
- ``input_too_large``: the instructions and input do not fit the model's window (nothing was sent);
- ``malformed_json``: JSON was expected and the reply was not valid JSON (or did not match the
  schema, or the pydantic ``output_type``) twice: once as asked, once more after a stricter
  follow-up that quotes the problem.

Markdown fences around the JSON are stripped, and prose around a single JSON value is tolerated.
Tools reach this through :class:`botframework.modelcalls.ModelCalls` (``ctx.models``), which
supplies the candidates, the tier allowlist, the budget fitting and the ledger.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonschema import SchemaError, ValidationError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from botframework.errors import BotframeworkError, BudgetError, ContextOverflowError
from botframework.messages import Message
from botframework.models.base import ModelRequest, Usage
from botframework.models.router import ModelRouter, OverflowCallback, RouterObserver

__all__ = [
    "StructuredCall",
    "StructuredErrorKind",
    "StructuredResult",
    "extract_json",
    "run_structured",
]

StructuredErrorKind = Literal["tier_not_allowed", "llm_unavailable", "input_too_large", "malformed_json"]
FitRequest = Callable[[str, ModelRequest], Awaitable[ModelRequest]]

_JSON_ONLY = "Answer with one JSON value only: no prose before or after it, no markdown code fences, no comments."
_FENCE = re.compile(r"```[ \t]*(?:json5?|JSON)?[ \t]*\n?(?P<body>.*?)\n?[ \t]*```", re.DOTALL)
_PREVIOUS_LIMIT = 4000


@dataclass(frozen=True, kw_only=True)
class StructuredCall:
    """What to ask. ``schema`` (a JSON Schema) or ``output_type`` implies a JSON answer;
    ``expect_json`` forces it on/off."""

    instructions: str
    input: str
    candidates: Sequence[str]
    schema: Mapping[str, Any] | None = None
    """Sent with the instructions and checked before ``output_type``; defaults to ``output_type``'s schema."""
    output_type: type[BaseModel] | None = None
    """The answer must validate as this pydantic model; the result's ``output`` is the instance."""
    expect_json: bool | None = None
    allowed_tiers: Collection[str] | None = None
    """``ModelConfig.tier`` values this call may use; None allows every tier."""
    max_tokens: int = 1024
    temperature: float | None = None

    @property
    def json_schema(self) -> Mapping[str, Any] | None:
        if self.schema is not None:
            return self.schema
        return self.output_type.model_json_schema() if self.output_type is not None else None

    @property
    def wants_json(self) -> bool:
        if self.expect_json is not None:
            return self.expect_json
        return self.schema is not None or self.output_type is not None


@dataclass(frozen=True, kw_only=True)
class StructuredResult:
    text: str = ""
    data: Any = None
    """The parsed JSON (None when no JSON was expected or it could not be had)."""
    output: BaseModel | None = None
    """The ``output_type`` instance validated from ``data`` (None without an ``output_type``)."""
    usage: Usage = field(default_factory=Usage)
    """Summed over the calls made (the stricter retry included)."""
    model: str | None = None
    """The configured name of the model that answered last."""
    error: StructuredErrorKind | None = None
    detail: str = ""
    """Why, when ``error`` is set (the router's error, the JSON problem...)."""
    calls: int = 0
    """Successful model calls made: 1, or 2 after the stricter retry."""

    @property
    def ok(self) -> bool:
        return self.error is None


def _strip_fences(text: str) -> str:
    stripped = text.strip()
    whole = _FENCE.fullmatch(stripped)
    if whole is not None:
        return whole["body"].strip()
    first = _FENCE.search(stripped)
    return first["body"].strip() if first is not None else stripped


def extract_json(text: str) -> tuple[Any, str | None]:
    """``(value, None)`` from a reply, tolerating fences and prose around one JSON value; else
    ``(None, problem)``."""
    body = _strip_fences(text)
    if not body:
        return None, "the reply is empty"
    try:
        return json.loads(body), None
    except ValueError as exc:
        problem = f"not valid JSON: {exc}"
    decoder = json.JSONDecoder()
    for i, ch in enumerate(body):
        if ch in "{[":
            try:
                value, _end = decoder.raw_decode(body, i)
            except ValueError:
                continue
            return value, None
    return None, problem


def _schema_problem(value: Any, schema: Mapping[str, Any] | None) -> str | None:
    if schema is None:
        return None
    validator = validator_for(schema)(schema)
    error: ValidationError | None = best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"does not match the schema at {where}: {error.message}"


def _model_problem(value: Any, output_type: type[BaseModel] | None) -> tuple[BaseModel | None, str | None]:
    if output_type is None:
        return None, None
    try:
        return output_type.model_validate(value), None
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'/'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:3]
        )
        return None, f"does not match {output_type.__name__}: {problems}"


def _system(call: StructuredCall, schema: Mapping[str, Any] | None) -> str:
    if not call.wants_json:
        return call.instructions
    parts = [call.instructions, _JSON_ONLY]
    if schema is not None:
        parts.append("The JSON must validate against this JSON Schema:\n" + json.dumps(schema, indent=2))
    return "\n\n".join(p for p in parts if p)


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens,
    )


async def run_structured(
    call: StructuredCall,
    *,
    router: ModelRouter,
    observer: RouterObserver | None = None,
    fit: FitRequest | None = None,
    on_overflow: OverflowCallback | None = None,
) -> StructuredResult:
    """Run ``call``. Never raises for model failures (cancellation still propagates).

    ``fit`` may adjust the request for a given model (e.g. the budget engine's fitting; raising a
    ``BudgetError`` there gives ``input_too_large``); without it ``max_tokens`` is capped by the
    model's ``max_output_tokens`` and half its window. ``on_overflow`` hears a provider's
    "context length exceeded" before the router tries the same model once more.
    """
    schema = call.json_schema
    if schema is not None:
        try:
            validator_for(schema).check_schema(dict(schema))
        except SchemaError as exc:
            raise ValueError(f"invalid JSON schema for a structured call: {exc.message}") from exc
    known = [n for n in dict.fromkeys(call.candidates) if n in router.clients]
    allowed = [n for n in known if call.allowed_tiers is None or router.clients[n].config.tier in call.allowed_tiers]
    if known and not allowed:
        tiers = sorted({router.clients[n].config.tier for n in known})
        return StructuredResult(
            error="tier_not_allowed",
            detail=f"candidates {known} are of tier(s) {tiers}; allowed: {sorted(call.allowed_tiers or ())}",
        )
    if not allowed:
        return StructuredResult(
            error="llm_unavailable", detail=f"no configured model among candidates {list(call.candidates)}"
        )

    system = _system(call, schema)
    usage = Usage()
    calls = 0
    messages: list[Message] = [Message.user(call.input)]
    problem: str | None = None
    text = ""
    model: str | None = None
    for round_ in range(2 if call.wants_json else 1):
        if round_ == 1:
            previous = text if len(text) <= _PREVIOUS_LIMIT else text[:_PREVIOUS_LIMIT] + "…"
            messages = [
                Message.user(call.input),
                Message.assistant(previous or "(empty reply)"),
                Message.user(
                    f"That reply cannot be used ({problem}). Reply again with only the JSON value"
                    f"{' that matches the schema' if schema is not None else ''}. {_JSON_ONLY}"
                ),
            ]
        request_messages = tuple(messages)

        async def build(name: str, request_messages: tuple[Message, ...] = request_messages) -> ModelRequest:
            cfg = router.clients[name].config
            request = ModelRequest(
                system=system,
                messages=request_messages,
                max_tokens=max(16, min(call.max_tokens, cfg.max_output_tokens, cfg.context_window // 2)),
                temperature=call.temperature,
            )
            return await fit(name, request) if fit is not None else request

        async def no_overflow(_name: str, _error: ContextOverflowError, _request: ModelRequest) -> None:
            return None

        try:
            routed = await router.call(
                candidates=allowed, build=build, on_overflow=on_overflow or no_overflow, observer=observer
            )
        except BudgetError as exc:
            return StructuredResult(
                text=text, usage=usage, model=model, error="input_too_large", detail=str(exc), calls=calls
            )
        except BotframeworkError as exc:
            return StructuredResult(
                text=text, usage=usage, model=model, error="llm_unavailable", detail=str(exc), calls=calls
            )
        calls += 1
        usage = _add(usage, routed.response.usage)
        text = routed.response.text
        model = routed.model_name
        if not call.wants_json:
            return StructuredResult(text=text, usage=usage, model=model, calls=calls)
        value, problem = extract_json(text)
        if problem is None:
            problem = _schema_problem(value, schema)
        output: BaseModel | None = None
        if problem is None:
            output, problem = _model_problem(value, call.output_type)
        if problem is not None and routed.response.finish_reason == "length":
            problem = f"the reply was cut off at the output limit, so {problem}"
        if problem is None:
            return StructuredResult(text=text, data=value, output=output, usage=usage, model=model, calls=calls)
    return StructuredResult(
        text=text, usage=usage, model=model, error="malformed_json", detail=problem or "", calls=calls
    )
