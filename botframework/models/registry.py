"""Build model clients from config."""

from __future__ import annotations

from collections.abc import Mapping

from botframework.config.schema import ModelConfig
from botframework.errors import ConfigError
from botframework.models.base import ModelClient

__all__ = ["build_client", "build_clients"]


def build_client(name: str, config: ModelConfig) -> ModelClient:
    """The client for one ``models:`` entry (``openai`` | ``anthropic`` | ``offline``)."""
    if config.provider == "openai":
        from botframework.models.openai_provider import OpenAIClient

        return OpenAIClient(name=name, config=config)
    if config.provider == "anthropic":
        from botframework.models.anthropic_provider import AnthropicClient

        return AnthropicClient(name=name, config=config)
    if config.provider == "offline":
        from botframework.models.offline_provider import OfflineClient

        return OfflineClient(name=name, config=config)
    raise ConfigError(f"models.{name}.provider: unknown provider {config.provider!r}")


def build_clients(models: Mapping[str, ModelConfig]) -> dict[str, ModelClient]:
    """One client per configured model, keyed by its name."""
    return {name: build_client(name, cfg) for name, cfg in models.items()}
