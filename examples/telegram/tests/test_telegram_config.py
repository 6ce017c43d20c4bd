"""The channel's options, validated by botframework's loader like any built-in channel's."""

from __future__ import annotations

import pytest
from botframework.config.loader import parse_config
from botframework.config.reference import render_reference
from botframework.errors import ConfigError
from tg_fake_api import BOT_TOKEN

from bf_telegram.config import TelegramChannelConfig

BASE = """\
models:
  main: {provider: offline, model: x}
tenants:
  acme:
    agent: {model: main}
    channels:
      telegram:
"""


def problems(section: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + section, env=env or {})
    return [str(p) for p in caught.value.problems]


def test_a_valid_section_becomes_the_channels_model() -> None:
    text = BASE + "        bot_token: ${TG_TOKEN}\n        secret_token: ${TG_SECRET}\n"
    config = parse_config(text, env={"TG_TOKEN": BOT_TOKEN, "TG_SECRET": "abc_DEF-123"})
    options = config.tenants["acme"].channels["telegram"]
    assert isinstance(options, TelegramChannelConfig)
    assert options.bot_id == 7123456789
    assert options.api_base_url == "https://api.telegram.org"
    assert BOT_TOKEN not in repr(options)


def test_problems_name_the_yaml_path_and_line() -> None:
    assert problems("        secret_token: abc\n        mode: webhook\n        colour: blue\n") == [
        "tenants.acme.channels.telegram.bot_token: field required (line 7)",
        "tenants.acme.channels.telegram.colour: unknown field (check the spelling against config/reference.yaml) "
        "(line 10)",
    ]


def test_webhook_mode_needs_a_secret_token_and_polling_does_not() -> None:
    [problem] = problems(f"        bot_token: {BOT_TOKEN}\n")
    assert problem.startswith("tenants.acme.channels.telegram: ") and "secret_token is required" in problem
    TelegramChannelConfig.model_validate({"bot_token": BOT_TOKEN, "mode": "polling"})


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("        bot_token: not-a-token\n        secret_token: abc\n", "bot_token"),
        (f"        bot_token: {BOT_TOKEN}\n        secret_token: 'has spaces'\n", "secret_token"),
        (f"        bot_token: {BOT_TOKEN}\n        secret_token: abc\n        api_base_url: ftp://x\n", "api_base_url"),
        (f"        bot_token: {BOT_TOKEN}\n        secret_token: abc\n        poll_timeout_s: 90\n", "poll_timeout_s"),
    ],
)
def test_bad_values_are_reported_without_echoing_secrets(section: str, field: str) -> None:
    [problem] = problems(section)
    assert problem.startswith(f"tenants.acme.channels.telegram.{field}: ")
    assert "not-a-token" not in problem and "has spaces" not in problem


@pytest.mark.slow  # imports every installed channel, feishu's SDK included
def test_the_installed_reference_documents_the_channel() -> None:
    reference = render_reference(installed=True)
    section = reference[reference.index("      telegram:") :]
    for key in ("bot_token:", "secret_token:", 'api_base_url: "https://api.telegram.org"', "mode: webhook"):
        assert key in section.split("\n      websocket:")[0]
    assert "telegram:" not in render_reference()  # the committed reference documents the shipped channels
