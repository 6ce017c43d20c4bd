"""The plugin registry: discovery by entry point, lazy import, clear failures naming the distribution."""

from __future__ import annotations

import pytest

from botframework.errors import PluginError
from botframework.plugins import CHANNELS, HOOKS, PROVIDERS
from tests.plugins.conftest import Install

ECHO = """
from pydantic import BaseModel
from botframework.channel import ChannelAdapter

class EchoOptions(BaseModel):
    model_config = {"extra": "forbid"}
    secret: str

class EchoAdapter(ChannelAdapter[EchoOptions]):
    name = "echohook"
    config_model = EchoOptions

    async def deliver(self, outbound):
        pass
"""


def test_shipped_channels_and_providers_register_through_entry_points() -> None:
    assert {"websocket", "slack", "discord", "feishu", "wecom", "wechat"} <= set(CHANNELS.names())
    assert {"openai", "anthropic", "offline"} <= set(PROVIDERS.names())
    [source] = CHANNELS.sources("slack")
    assert source.value == "channels.slack:SlackAdapter"
    assert source.distribution.startswith("botframework ")


def test_a_third_party_channel_is_listed_without_import_and_loaded_on_use(install: Install) -> None:
    install("bf-echohook", {"botframework.channels": {"echohook": "bf_echo:EchoAdapter"}}, modules={"bf_echo": ECHO})
    import sys

    assert "echohook" in CHANNELS.names()
    assert "bf_echo" not in sys.modules  # listing reads metadata only
    adapter = CHANNELS.load("echohook")
    assert adapter.__name__ == "EchoAdapter" and adapter.config_model.__name__ == "EchoOptions"


def test_a_plugin_that_fails_to_import_names_its_distribution(install: Install) -> None:
    install(
        "bf-broken",
        {"botframework.channels": {"broken": "bf_broken:Adapter"}},
        modules={"bf_broken": "import not_a_module_anywhere\n"},
        version="2.3",
    )
    with pytest.raises(PluginError) as info:
        CHANNELS.load("broken")
    message = str(info.value)
    assert "bf-broken 2.3" in message and "ModuleNotFoundError" in message and "not_a_module_anywhere" in message
    assert info.value.distribution == "bf-broken 2.3"


def test_two_distributions_claiming_one_name_is_a_clear_error(install: Install) -> None:
    install("bf-one", {"botframework.channels": {"dup": "bf_one:A"}})
    install("bf-two", {"botframework.channels": {"dup": "bf_two:B"}})
    with pytest.raises(
        PluginError, match=r"2 installed distributions claim the channel 'dup': .*bf-one 1\.0.*bf-two 1\.0"
    ):
        CHANNELS.load("dup")


def test_an_object_of_the_wrong_kind_is_refused(install: Install) -> None:
    install(
        "bf-wrong",
        {"botframework.channels": {"wrong": "bf_wrong:thing"}, "botframework.providers": {"wrong": "bf_wrong:thing"}},
        modules={"bf_wrong": "thing = 42\n"},
    )
    with pytest.raises(PluginError, match="expected a ChannelAdapter subclass, got 42"):
        CHANNELS.load("wrong")
    with pytest.raises(PluginError, match="expected a ModelClient subclass"):
        PROVIDERS.load("wrong")


def test_an_adapter_registered_under_another_name_than_it_declares_is_refused(install: Install) -> None:
    install("bf-misnamed", {"botframework.channels": {"other": "bf_echo2:EchoAdapter"}}, modules={"bf_echo2": ECHO})
    with pytest.raises(PluginError, match=r"EchoAdapter\.name is 'echohook', but it is registered as 'other'"):
        CHANNELS.load("other")


def test_unknown_names_list_what_is_available() -> None:
    with pytest.raises(PluginError, match=r"unknown hook 'nope' \(available: "):
        HOOKS.load("nope")


def test_registering_over_an_installed_plugin_needs_replace() -> None:
    from channels.slack import SlackAdapter

    with pytest.raises(PluginError, match="already provided"):
        CHANNELS.register("slack", SlackAdapter)
    with CHANNELS.registered("slack", SlackAdapter, replace=True):
        assert CHANNELS.load("slack") is SlackAdapter
