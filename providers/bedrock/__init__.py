"""``provider: bedrock``: Anthropic models on Amazon Bedrock, through ``anthropic.AsyncAnthropicBedrock``."""

from providers.bedrock.client import BedrockClient
from providers.bedrock.config import BedrockModelConfig

__all__ = ["BedrockClient", "BedrockModelConfig"]
