"""Options of ``provider: cohere``."""

from __future__ import annotations

from pydantic import SecretStr

from botframework.config.schema import ModelConfig

__all__ = ["CohereModelConfig"]


class CohereModelConfig(ModelConfig):
    """``provider: cohere``: Cohere's Chat API v2 (``pip install 'botframework[cohere]'``); ``model``
    is a Cohere model such as ``command-a-03-2025``. ``base_url`` defaults to Cohere's API."""

    api_key: SecretStr
    """API key (use ``${VAR}``)."""

    def tiktoken_model(self) -> str | None:
        """Cohere's tokenizer is not in tiktoken: counted with the fallback and its margin, calibrated."""
        return None
