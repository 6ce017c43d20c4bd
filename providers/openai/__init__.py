"""``provider: openai``: any OpenAI-compatible Chat Completions endpoint, through the ``openai`` SDK."""

from providers.openai.client import OpenAIClient
from providers.openai.config import OpenAIModelConfig

__all__ = ["OpenAIClient", "OpenAIModelConfig"]
