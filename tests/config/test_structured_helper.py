"""``agent.structured``: the helper models and the tier allowlist are checked at load."""

from __future__ import annotations

import pytest

from botframework.config import parse_config
from botframework.errors import ConfigError

CONFIG = """
models:
  main: {{provider: offline, tier: large}}
  mini: {{provider: offline, tier: small}}
tenants:
  acme:
    agent:
      model: main
      structured: {structured}
"""


def problems(structured: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG.format(structured=structured), env={})
    return [str(p) for p in info.value.problems]


def test_a_valid_allowlist_loads() -> None:
    config = parse_config(CONFIG.format(structured="{models: [main, mini], allowed_tiers: [small]}"), env={})
    helper = config.tenants["acme"].agent.structured
    assert (helper.models, helper.allowed_tiers) == (["main", "mini"], ["small"])


def test_defaults_allow_every_tier_on_the_agent_models() -> None:
    config = parse_config(CONFIG.format(structured="{}"), env={})
    helper = config.tenants["acme"].agent.structured
    assert (helper.models, helper.allowed_tiers) == ([], None)


def test_an_unknown_helper_model_names_the_path() -> None:
    assert problems("{models: [mini, nope]}") == [
        "tenants.acme.agent.structured.models.1: unknown model 'nope' (defined: main, mini) (line 9)"
    ]


def test_an_allowlist_that_leaves_no_model_is_an_error() -> None:
    [found] = problems("{allowed_tiers: [small]}")
    assert found.startswith(
        "tenants.acme.agent.structured.allowed_tiers: no helper model is of an allowed tier (small); "
        "the candidates are main: large."
    )


@pytest.mark.parametrize(
    ("structured", "message"),
    [
        ("{allowed_tiers: []}", "tenants.acme.agent.structured.allowed_tiers: List should have at least 1 item"),
        ("{allowed_tiers: [small, small]}", "allowed_tiers lists 'small' more than once"),
        ("{allowed_tiers: [small], colour: red}", "tenants.acme.agent.structured.colour: unknown field"),
    ],
)
def test_malformed_settings_are_reported(structured: str, message: str) -> None:
    assert any(message in p for p in problems(structured)), problems(structured)
