"""Options of ``provider: gemini``."""

from __future__ import annotations

from pydantic import Field, SecretStr

from botframework.config.schema import ModelConfig

__all__ = ["GeminiModelConfig"]


class GeminiModelConfig(ModelConfig):
    """``provider: gemini``: the Gemini API (``pip install 'botframework[gemini]'``); ``model`` is a
    Gemini model id such as ``gemini-2.5-flash``. ``base_url`` defaults to Google's endpoint."""

    api_key: SecretStr
    """API key (use ``${VAR}``), sent as ``x-goog-api-key``."""
    api_version: str = Field("v1beta", min_length=1)
    """API version path segment."""

    def tiktoken_model(self) -> str | None:
        """Gemini's tokenizer is not in tiktoken: counted with the fallback and its margin, calibrated
        against the ``usageMetadata`` every answer reports."""
        return None
