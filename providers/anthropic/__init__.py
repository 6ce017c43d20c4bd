"""``provider: anthropic``: Anthropic's Messages API, through the ``anthropic`` SDK."""

from providers.anthropic.client import AnthropicClient
from providers.anthropic.config import AnthropicModelConfig

__all__ = ["AnthropicClient", "AnthropicModelConfig"]
