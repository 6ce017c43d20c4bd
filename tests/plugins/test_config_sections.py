"""Plugin sections of the config: a channel's options validated by its own model, errors with paths."""

from __future__ import annotations

import logging

import pytest

from botframework.config import parse_config
from botframework.config.sections import UnavailablePlugin
from botframework.errors import ConfigError
from botframework.runtime import Runtime
from tests.plugins.conftest import Install
from tests.plugins.test_registry import ECHO

BASE = """\
storage: {url: "sqlite+aiosqlite:///:memory:"}
models:
  main: {provider: offline}
tenants:
  acme:
    agent: {model: main}
    channels:
      websocket: {}
"""


def problems(text: str, **kw: bool) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={}, **kw)
    return [str(p) for p in info.value.problems]


def test_a_plugin_channel_is_validated_by_its_own_model(install: Install) -> None:
    install("bf-echohook", {"botframework.channels": {"echohook": "bf_echo:EchoAdapter"}}, modules={"bf_echo": ECHO})
    config = parse_config(BASE + "      echohook: {secret: s3}\n", env={})
    options = config.tenants["acme"].channels["echohook"]
    assert type(options).__name__ == "EchoOptions" and options.secret == "s3"  # type: ignore[attr-defined]
    assert problems(BASE + "      echohook: {sekret: s3}\n") == [
        "tenants.acme.channels.echohook.secret: field required (line 9)",
        "tenants.acme.channels.echohook.sekret: unknown field (check the spelling against config/reference.yaml) "
        "(line 9)",
    ]


def test_an_unknown_channel_lists_installed_plugins_too(install: Install) -> None:
    install("bf-echohook", {"botframework.channels": {"echohook": "bf_echo:EchoAdapter"}}, modules={"bf_echo": ECHO})
    [problem] = problems(BASE + "      echohok: {}\n")
    assert problem.startswith("tenants.acme.channels.echohok: unknown channel 'echohok' (available: discord, echohook,")


def test_a_broken_channel_plugin_fails_check_config_but_not_the_other_channels_at_serve(
    install: Install, caplog: pytest.LogCaptureFixture
) -> None:
    install(
        "bf-broken",
        {"botframework.channels": {"broken": "bf_broken:Adapter"}},
        modules={"bf_broken": "raise RuntimeError('boom at import')\n"},
    )
    text = BASE + "      broken: {token: x}\n"
    [problem] = problems(text)
    assert problem.startswith(
        "tenants.acme.channels.broken: the channel 'broken' (bf_broken:Adapter from distribution "
    )
    assert "bf-broken 1.0) failed to import: RuntimeError: boom at import" in problem

    config = parse_config(text, env={}, skip_broken_plugins=True)
    broken = config.tenants["acme"].channels["broken"]
    assert isinstance(broken, UnavailablePlugin) and broken.distribution == "bf-broken 1.0"
    with caplog.at_level(logging.ERROR, logger="botframework.runtime"):
        runtime = Runtime(config=config)
    assert set(runtime.adapters) == {("acme", "websocket")}
    [record] = [r for r in caplog.records if "broken" in r.getMessage()]
    assert "tenant acme runs without its broken channel" in record.getMessage()
    assert record.exc_info is None


def test_an_unknown_channel_is_still_an_error_at_serve() -> None:
    """Skipping is for installed plugins that break, not for typos."""
    [problem] = problems(BASE + "      slak: {}\n", skip_broken_plugins=True)
    assert problem.startswith("tenants.acme.channels.slak: unknown channel 'slak'")


def test_provider_options_are_validated_by_the_provider() -> None:
    text = BASE.replace("main: {provider: offline}", "main: {provider: offline}\n  oa: {provider: openai, model: m}")
    assert problems(text) == ["models.oa.api_key: field required (line 4)"]
    [problem] = problems(BASE.replace("provider: offline", "provider: nope"))
    assert problem.startswith("models.main.provider: unknown model provider 'nope' (available: anthropic,")
    assert problem.endswith("(line 3)")
