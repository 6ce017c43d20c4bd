"""``provider: gemini``: Google's Gemini API, through the ``google-genai`` SDK."""

from providers.gemini.client import GeminiClient
from providers.gemini.config import GeminiModelConfig

__all__ = ["GeminiClient", "GeminiModelConfig"]
