from __future__ import annotations

from pathlib import Path

import pytest

from botframework.config import parse_config
from botframework.config.loader import interpolate, load_config
from botframework.config.reference import render_reference
from botframework.errors import ConfigError
from channels.wecom.config import WeComChannelConfig

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
models:
  main: {provider: offline}
tenants:
  acme:
    agent: {model: main}
    channels:
      websocket: {}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=env or {})
    return [str(p) for p in info.value.problems]


def test_minimal_config_turns_channels_on_by_presence() -> None:
    config = parse_config(MINIMAL, env={})
    assert set(config.tenants["acme"].channels) == {"websocket"}
    assert config.server.port == 8080


def test_interpolation_with_defaults_and_escape() -> None:
    env = {"A": "x", "EMPTY": ""}
    assert interpolate("${A}-${B:-dflt}-${EMPTY:-e}", env) == "x-dflt-e"
    assert interpolate("$${A} literal", env) == "${A} literal"


def test_interpolated_plain_scalars_are_typed() -> None:
    text = MINIMAL + "server:\n  port: ${PORT:-9001}\n  host: '${HOST:-0.0.0.0}'\n"
    config = parse_config(text, env={})
    assert config.server.port == 9001
    assert config.server.host == "0.0.0.0"


def test_every_problem_is_reported_with_path_and_line() -> None:
    text = """\
models:
  main: {provider: offline}
  oa: {provider: openai, model: gpt-4o, api_key: "${OPENAI_API_KEY}"}
tenants:
  acme:
    agent: {model: main, fallback_models: [nope], temprature: 1}
    channels:
      slack: {bot_token: xoxb-1}
"""
    found = problems(text)
    assert (
        "models.oa.api_key: environment variable OPENAI_API_KEY is not set "
        "(set it, or write ${OPENAI_API_KEY:-default}) (line 3)" in found
    )
    assert any(
        p.startswith("tenants.acme.agent.temprature: unknown field") and p.endswith("(line 6)") for p in found
    )
    assert "tenants.acme.channels.slack.signing_secret: field required (line 8)" in found


def test_cross_reference_problems_name_the_path() -> None:
    found = problems(MINIMAL.replace("agent: {model: main}", "agent: {model: main, fallback_models: [nope]}"))
    assert found == ["tenants.acme.agent.fallback_models.0: unknown model 'nope' (defined: main) (line 6)"]


def test_unknown_tool_is_a_config_error() -> None:
    found = problems(
        MINIMAL.replace("agent: {model: main}", "agent: {model: main, tools: [clock, teleport]}")
    )
    assert len(found) == 1 and found[0].startswith("tenants.acme.agent.tools.1: unknown tool 'teleport'")


def test_yaml_syntax_error_gives_the_line() -> None:
    found = problems("models:\n  main: {provider: offline\ntenants: {}\n")
    assert len(found) == 1 and found[0].startswith("<yaml>:") and "(line 3)" in found[0]


def test_numeric_ids_accept_numbers_and_strings() -> None:
    base = {"corp_id": "ww1", "secret": "s", "token": "t", "encoding_aes_key": "a" * 43}
    assert WeComChannelConfig.model_validate({**base, "agent_id": 1000002}).agent_id == "1000002"
    assert WeComChannelConfig.model_validate({**base, "agent_id": "1000002"}).agent_id == "1000002"


def test_an_unknown_channel_is_reported_with_the_available_ones() -> None:
    found = problems(MINIMAL + "      teams: {}\n")
    assert len(found) == 1
    assert found[0].startswith("tenants.acme.channels.teams: unknown channel 'teams' (available: discord, feishu,")
    assert found[0].endswith("(line 9)")


def test_secrets_never_appear_in_repr() -> None:
    text = MINIMAL.replace("websocket: {}", "websocket: {token: hunter2-secret}")
    config = parse_config(text, env={})
    assert "hunter2-secret" not in repr(config)
    assert "hunter2-secret" not in str(config.model_dump())


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "does not exist" in str(info.value)


def test_example_config_is_valid() -> None:
    config = load_config(ROOT / "config" / "example.yaml", env={})
    assert config.models["main"].provider == "offline"


def test_reference_is_generated_from_the_schema() -> None:
    committed = (ROOT / "config" / "reference.yaml").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "run: python -m botframework.config.reference > config/reference.yaml"
    )
