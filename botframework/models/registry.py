"""Build model clients from config, through the provider plugins."""

from __future__ import annotations

from botframework.config.schema import ModelConfig
from botframework.models.base import ModelClient
from botframework.plugins import PROVIDERS

__all__ = ["build_client"]


def build_client(name: str, config: ModelConfig) -> ModelClient:
    """The client for the ``models:`` entry ``name``, built by the provider plugin it names."""
    return PROVIDERS.load(config.provider)(name=name, config=config)
