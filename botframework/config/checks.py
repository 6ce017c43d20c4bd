"""Checks across fields that the schema alone cannot make: references, tool names, prompt size.

Reference and tool checks read the raw YAML data, so they still run (and report) when other
parts of the file fail schema validation: ``check-config`` lists every problem in one go.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from botframework.config.schema import AgentConfig, Config

__all__ = ["config_problems", "raw_problems"]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def raw_problems(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Model references, tool and hook names, from the parsed YAML before validation."""
    from botframework.hooks import resolve_hooks
    from botframework.tools.mcp.checks import mcp_problems
    from botframework.tools.registry import resolve_tool

    yield from mcp_problems(data)
    models = _mapping(data.get("models"))
    known = ", ".join(sorted(str(m) for m in models)) or "none"
    for tname, tenant in _mapping(data.get("tenants")).items():
        agent = _mapping(_mapping(tenant).get("agent"))
        base = f"tenants.{tname}.agent"
        refs: list[tuple[str, Any]] = [("model", agent.get("model"))]
        refs += [(f"fallback_models.{i}", m) for i, m in enumerate(_list(agent.get("fallback_models")))]
        refs.append(("history.summary_model", _mapping(agent.get("history")).get("summary_model")))
        structured = _list(_mapping(agent.get("structured")).get("models"))
        refs += [(f"structured.models.{i}", m) for i, m in enumerate(structured)]
        for field_name, ref in refs:
            if isinstance(ref, str) and ref not in models:
                yield f"{base}.{field_name}", f"unknown model {ref!r} (defined: {known})"
        for i, ref in enumerate(_list(agent.get("tools"))):
            if isinstance(ref, str) and not ref.startswith("mcp:"):
                try:
                    resolve_tool(ref)
                except LookupError as exc:
                    yield f"{base}.tools.{i}", str(exc)
        for i, ref in enumerate(_list(agent.get("hooks"))):
            if isinstance(ref, str):
                try:
                    resolve_hooks([ref])
                except LookupError as exc:
                    yield f"{base}.hooks.{i}", str(exc)


def config_problems(config: Config) -> Iterator[tuple[str, str]]:
    """Checks that need the validated config: channel plugins that load, system prompts that fit."""
    from botframework.budget import prompt_fit_problem
    from botframework.config.sections import BROKEN_PLUGIN, UnavailablePlugin

    for tname, tenant in config.tenants.items():
        for channel, options in tenant.channels.items():
            if isinstance(options, UnavailablePlugin):
                yield f"tenants.{tname}.channels.{channel}", BROKEN_PLUGIN + options.problem
        agent = tenant.agent
        problem = _helper_tier_problem(config, agent)
        if problem:
            yield f"tenants.{tname}.agent.structured.allowed_tiers", problem
        for name in [agent.model, *agent.fallback_models]:
            model = config.models.get(name)
            if model is None:
                continue
            problem = prompt_fit_problem(config.budget, model, agent)
            if problem:
                yield f"tenants.{tname}.agent.system_prompt", f"too large for model {name!r}: {problem}"


def _helper_tier_problem(config: Config, agent: AgentConfig) -> str | None:
    """An allowlist that leaves the helper no model would refuse every call of every tool."""
    from botframework.modelcalls import helper_candidates

    allowed = agent.structured.allowed_tiers
    if allowed is None:
        return None
    names = [n for n in helper_candidates(agent, config.models) if n in config.models]
    if not names or any(config.models[n].tier in allowed for n in names):
        return None
    tiers = ", ".join(f"{n}: {config.models[n].tier}" for n in names)
    return (
        f"no helper model is of an allowed tier ({', '.join(allowed)}); the candidates are {tiers}. "
        "Allow one of their tiers, or list a model of an allowed tier in structured.models"
    )
