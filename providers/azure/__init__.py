"""``provider: azure``: Azure OpenAI deployments, through the ``openai`` SDK's ``AsyncAzureOpenAI``."""

from providers.azure.client import AzureOpenAIClient
from providers.azure.config import AzureOpenAIModelConfig, EntraIdOptions

__all__ = ["AzureOpenAIClient", "AzureOpenAIModelConfig", "EntraIdOptions"]
