"""``provider: cohere``: Cohere's Chat API (v2), through the ``cohere`` SDK's async client."""

from providers.cohere.client import CohereClient
from providers.cohere.config import CohereModelConfig

__all__ = ["CohereClient", "CohereModelConfig"]
