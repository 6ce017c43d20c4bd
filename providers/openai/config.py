"""Options of ``provider: openai``."""

from __future__ import annotations

from pydantic import SecretStr

from botframework.config.schema import ModelConfig

__all__ = ["OpenAIModelConfig"]


class OpenAIModelConfig(ModelConfig):
    """``provider: openai``: the common model options; an API key is required."""

    api_key: SecretStr
    """Credential (use ``${VAR}``)."""
