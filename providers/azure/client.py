"""Azure OpenAI: one deployment of a resource, through the ``openai`` SDK's ``AsyncAzureOpenAI``.

Everything but the endpoint and the credentials is the OpenAI provider's: the Chat Completions
wire (built once, cached, posted as finished JSON), streaming and tool-call accumulation, and the
``openai`` SDK's exception table (Azure's codes, such as ``DeploymentNotFound`` and
``content_filter``, are in the common code table). The SDK routes each request to
``<endpoint>/openai/deployments/<deployment>/chat/completions?api-version=<api_version>`` and sends
``api-key: <key>``, or ``Authorization: Bearer <token>`` for a Microsoft Entra ID token (a fixed
``ad_token``, or ``entra_id``: a credential of ``azure-identity`` that refreshes it).

Azure streams a first chunk without choices (prompt filter results) and ends a filtered answer
with ``finish_reason: content_filter``; both are handled by the OpenAI stream reader.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import openai

from botframework.config.schema import ModelConfig
from providers.azure.config import AzureOpenAIModelConfig, EntraIdOptions
from providers.openai.client import OpenAIClient

__all__ = ["AzureOpenAIClient", "TokenProvider"]

TokenProvider = Callable[[], Awaitable[str]]
"""Returns a current Entra ID access token (called before each request; it caches and refreshes)."""


class AzureOpenAIClient(OpenAIClient):
    config_model = AzureOpenAIModelConfig

    def __init__(self, *, name: str, config: ModelConfig, token_provider: TokenProvider | None = None) -> None:
        """``token_provider`` replaces the ``entra_id`` credential (code that holds its own)."""
        self._token_provider = token_provider
        self._credential: Any = None
        super().__init__(name=name, config=config)

    def _sdk(self, config: ModelConfig) -> openai.AsyncOpenAI:
        if not isinstance(config, AzureOpenAIModelConfig):
            raise TypeError(f"provider azure needs AzureOpenAIModelConfig, got {type(config).__name__}")
        auth: dict[str, Any] = {}
        if config.api_key is not None:
            auth["api_key"] = config.api_key.get_secret_value()
        elif config.ad_token is not None:
            auth["azure_ad_token"] = config.ad_token.get_secret_value()
        elif self._token_provider is not None:
            auth["azure_ad_token_provider"] = self._token_provider
        elif config.entra_id is not None:
            auth["azure_ad_token_provider"] = self._entra_tokens(config.entra_id)
        return openai.AsyncAzureOpenAI(
            azure_endpoint=config.endpoint,
            azure_deployment=config.deployment,
            api_version=config.api_version,
            max_retries=0,
            timeout=config.timeout_s,
            default_headers=config.headers or None,
            **auth,
        )

    def _entra_tokens(self, options: EntraIdOptions) -> TokenProvider:
        try:
            from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential, get_bearer_token_provider
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ImportError("entra_id needs azure-identity: pip install 'botframework[azure]'") from exc
        if options.client_secret is not None:
            assert options.tenant_id is not None and options.client_id is not None  # checked by the config
            self._credential = ClientSecretCredential(
                options.tenant_id, options.client_id, options.client_secret.get_secret_value()
            )
        else:
            self._credential = DefaultAzureCredential(managed_identity_client_id=options.client_id)
        provider: TokenProvider = get_bearer_token_provider(self._credential, options.scope)
        return provider

    async def close(self) -> None:
        await super().close()
        if self._credential is not None:
            await self._credential.close()
