"""Options of ``provider: anthropic``."""

from __future__ import annotations

from pydantic import SecretStr

from botframework.config.schema import ModelConfig

__all__ = ["AnthropicModelConfig"]


class AnthropicModelConfig(ModelConfig):
    """``provider: anthropic``: the common model options; an API key is required."""

    api_key: SecretStr
    """Credential (use ``${VAR}``)."""

    def tiktoken_model(self) -> str | None:
        """Claude models have no public tiktoken encoding: counted with the fallback, calibrated."""
        return None
