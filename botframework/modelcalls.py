"""One-shot model calls from outside the turn loop: tools, hooks, the summarizer, background code.

A :class:`ModelCalls` is a small client bound to one caller (a tenant's turn, described by its
:class:`~botframework.tools.base.ToolContext`) and to the models that caller may use. Tools get
theirs as ``ctx.models``. Every call it makes:

- goes through the shared :class:`~botframework.models.router.ModelRouter`: retries with backoff,
  fallbacks in candidate order, the circuit breaker;
- is fitted to the answering model's window by the budget engine (a prompt that cannot fit is
  refused before anything is sent, and a provider's "context length exceeded" teaches the engine);
- writes one ledger row per attempt with the call's ``purpose`` (``summary``, ``tool:classify``...)
  and publishes the turn's model events, so ``botframework usage`` and the metrics count it.

Which model answers a helper call of an agent (:meth:`ModelGateway.for_agent`): the candidates are
``agent.structured.models``, or the agent's ``model`` then its ``fallback_models`` when that list is
empty. With ``agent.structured.allowed_tiers`` set, only candidates whose ``models.*.tier`` is listed
are used, ordered by the position of their tier in that list (list the cheapest tier first), and in
configured order within a tier; a call that leaves no allowed candidate is refused with
``tier_not_allowed``. A call may name one configured model (``model=``); the allowlist still applies.

Nothing here depends on the invocation service; it depends on the router, the budget engine, the
ledger and the event bus, which the service passes in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pydantic import BaseModel

from botframework.budget import BudgetEngine, fit_one_shot
from botframework.calls import CallRecorder
from botframework.config.schema import AgentConfig, ModelConfig
from botframework.errors import ContextOverflowError, ModelCallError
from botframework.events import EventBus, EventKind
from botframework.ledger import LedgerWriter
from botframework.models.base import ModelRequest, Usage
from botframework.models.router import ModelRouter
from botframework.structured import StructuredCall, StructuredErrorKind, StructuredResult, run_structured
from botframework.tools.base import ToolContext

__all__ = ["Completion", "ModelCalls", "ModelGateway", "helper_candidates"]

M = TypeVar("M", bound=BaseModel)

PURPOSE_MAX_CHARS = 32
"""The ledger's ``purpose`` column width."""
_THREAD_CHARS = 20_000
"""Count prompts longer than this in a worker thread (milliseconds of CPU per 100 KB)."""


@dataclass(frozen=True, kw_only=True)
class Completion:
    """A plain-text answer."""

    text: str
    model: str
    """The configured name (a key of ``models:``) of the model that answered."""
    usage: Usage


def helper_candidates(agent: AgentConfig, models: Mapping[str, ModelConfig]) -> list[str]:
    """The models an agent's helper calls try, in order (see the module docstring).

    Candidates of a tier the allowlist leaves out stay at the end so the helper can say which tiers
    it refused; they are never called.
    """
    names = list(dict.fromkeys(agent.structured.models or [agent.model, *agent.fallback_models]))
    tiers = agent.structured.allowed_tiers
    if tiers is None:
        return names
    rank = {tier: i for i, tier in enumerate(tiers)}
    return sorted(names, key=lambda n: rank.get(models[n].tier, len(rank)) if n in models else len(rank))


class ModelGateway:
    """What one-shot calls share across turns: router, budget engine, ledger, events, model configs."""

    def __init__(
        self,
        *,
        router: ModelRouter,
        budget: BudgetEngine,
        ledger: LedgerWriter,
        events: EventBus,
        models: Mapping[str, ModelConfig],
    ) -> None:
        self.router = router
        self.budget = budget
        self.ledger = ledger
        self.events = events
        self.models = models

    def client(
        self, ctx: ToolContext, *, candidates: Sequence[str], allowed_tiers: Sequence[str] | None = None
    ) -> ModelCalls:
        """A client for calls made on behalf of ``ctx`` over ``candidates`` (in order)."""
        return ModelCalls(gateway=self, ctx=ctx, candidates=candidates, allowed_tiers=allowed_tiers)

    def for_agent(self, ctx: ToolContext, agent: AgentConfig) -> ModelCalls:
        """The client the tools and hooks of ``agent`` get (``ctx.models``)."""
        return self.client(
            ctx, candidates=helper_candidates(agent, self.models), allowed_tiers=agent.structured.allowed_tiers
        )

    async def learn_overflow(self, model_name: str, error: ContextOverflowError, request: ModelRequest) -> None:
        self.budget.learn_overflow(
            model_name=model_name,
            model=self.models[model_name],
            error=error,
            estimated_prompt_tokens=request.estimated_prompt_tokens,
        )


_HINTS: Mapping[StructuredErrorKind, str] = {
    "tier_not_allowed": "use a model of an allowed tier, or allow its tier in "
    "tenants.{tenant}.agent.structured.allowed_tiers",
    "llm_unavailable": "the model service could not answer; try again later",
    "input_too_large": "send a shorter input",
    "malformed_json": "the model did not answer with the expected JSON, even after a stricter retry",
}


class ModelCalls:
    """One-shot model calls on behalf of one caller. Built by :class:`ModelGateway`.

    - :meth:`parse`: instructions + input -> an instance of a pydantic model (raises ModelCallError);
    - :meth:`structured`: the same, returning a :class:`~botframework.structured.StructuredResult`
      that carries the error instead of raising;
    - :meth:`complete`: instructions + input -> text (raises ModelCallError).

    Only model failures are reported as results or ``ModelCallError``; cancellation propagates, and
    a caller's mistake (an invalid schema or ``purpose``) raises ValueError.
    """

    def __init__(
        self,
        *,
        gateway: ModelGateway,
        ctx: ToolContext,
        candidates: Sequence[str],
        allowed_tiers: Sequence[str] | None = None,
    ) -> None:
        self._gateway = gateway
        self._ctx = replace(ctx, model_calls=None) if ctx.model_calls is not None else ctx
        self.candidates: tuple[str, ...] = tuple(candidates)
        """Model names tried in order (unless a call names its ``model``)."""
        self.allowed_tiers: tuple[str, ...] | None = tuple(allowed_tiers) if allowed_tiers is not None else None
        """``models.*.tier`` values calls may use; None allows every tier."""

    @property
    def tenant(self) -> str:
        return self._ctx.tenant

    async def structured(
        self,
        *,
        instructions: str,
        input: str,
        purpose: str,
        schema: Mapping[str, Any] | None = None,
        output_type: type[BaseModel] | None = None,
        expect_json: bool | None = None,
        model: str | None = None,
        max_tokens: int = 1024,
        temperature: float | None = None,
    ) -> StructuredResult:
        """Ask once (JSON answers get one stricter retry); never raises for a model failure.

        ``purpose`` labels the ledger rows (at most 32 characters, e.g. ``tool:classify``).
        ``schema`` (a JSON Schema) and/or ``output_type`` (a pydantic model) ask for JSON; the schema
        is sent with the instructions and the answer must validate against both.
        """
        if not purpose or len(purpose) > PURPOSE_MAX_CHARS:
            raise ValueError(f"purpose must be 1 to {PURPOSE_MAX_CHARS} characters, got {purpose!r}")
        call = StructuredCall(
            instructions=instructions,
            input=input,
            candidates=[model] if model is not None else self.candidates,
            schema=schema,
            output_type=output_type,
            expect_json=expect_json,
            allowed_tiers=self.allowed_tiers,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        g = self._gateway
        observer = CallRecorder(
            budget=g.budget, ledger=g.ledger, events=g.events, models=g.models, ctx=self._ctx, purpose=purpose
        )

        async def fit(name: str, request: ModelRequest) -> ModelRequest:
            return await self._fit(name, request, purpose)

        return await run_structured(call, router=g.router, observer=observer, fit=fit, on_overflow=g.learn_overflow)

    async def parse(
        self,
        output_type: type[M],
        *,
        instructions: str,
        input: str,
        purpose: str,
        schema: Mapping[str, Any] | None = None,
        model: str | None = None,
        max_tokens: int = 1024,
        temperature: float | None = None,
    ) -> M:
        """The answer as an ``output_type`` instance. Raises ModelCallError (its message says why)."""
        result = await self.structured(
            instructions=instructions,
            input=input,
            purpose=purpose,
            schema=schema,
            output_type=output_type,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        self._raise_for(result, purpose)
        assert isinstance(result.output, output_type)
        return result.output

    async def complete(
        self,
        *,
        instructions: str,
        input: str,
        purpose: str,
        model: str | None = None,
        max_tokens: int = 1024,
        temperature: float | None = None,
    ) -> Completion:
        """A plain-text answer. Raises ModelCallError (its message says why)."""
        result = await self.structured(
            instructions=instructions,
            input=input,
            purpose=purpose,
            expect_json=False,
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
        )
        self._raise_for(result, purpose)
        assert result.model is not None
        return Completion(text=result.text, model=result.model, usage=result.usage)

    def _raise_for(self, result: StructuredResult, purpose: str) -> None:
        if result.error is None:
            return
        raise ModelCallError(
            kind=result.error,
            detail=result.detail,
            purpose=purpose,
            hint=_HINTS[result.error].format(tenant=self._ctx.tenant),
        )

    async def _fit(self, name: str, request: ModelRequest, purpose: str) -> ModelRequest:
        g = self._gateway
        model = g.models[name]
        size = len(request.system) + sum(len(m.text) for m in request.messages)
        if size < _THREAD_CHARS:
            fitted = fit_one_shot(g.budget, model_name=name, model=model, request=request)
        else:
            fitted = await asyncio.to_thread(fit_one_shot, g.budget, model_name=name, model=model, request=request)
        await g.events.publish(
            EventKind.MODEL_REQUEST,
            self._ctx,
            model=name,
            purpose=purpose,
            messages=len(fitted.messages),
            estimated_prompt_tokens=fitted.estimated_prompt_tokens,
            max_tokens=fitted.max_tokens,
            tools=0,
        )
        return fitted
