"""Options of ``provider: azure``: a deployment of an Azure OpenAI resource, and how to authenticate."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, model_validator

from botframework.config.schema import ModelConfig
from botframework.config.types import HttpUrl, StrictModel

__all__ = ["COGNITIVE_SERVICES_SCOPE", "AzureOpenAIModelConfig", "EntraIdOptions"]

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


class EntraIdOptions(StrictModel):
    """Microsoft Entra ID tokens, fetched and refreshed by ``azure-identity``
    (``pip install 'botframework[azure]'``). With ``client_secret``: that app registration
    (``tenant_id`` and ``client_id`` required). Without: ``DefaultAzureCredential`` (environment,
    workload identity, managed identity, Azure CLI), ``client_id`` picking a user-assigned identity."""

    tenant_id: str | None = None
    """Directory (tenant) id."""
    client_id: str | None = None
    """Application (client) id, or the client id of a user-assigned managed identity."""
    client_secret: SecretStr | None = None
    """Client secret of the app registration (use ``${VAR}``)."""
    scope: str = COGNITIVE_SERVICES_SCOPE
    """Token scope."""

    @model_validator(mode="after")
    def _secret_needs_ids(self) -> EntraIdOptions:
        if self.client_secret is not None and not (self.tenant_id and self.client_id):
            raise ValueError("client_secret needs tenant_id and client_id (the app registration it belongs to)")
        return self


class AzureOpenAIModelConfig(ModelConfig):
    """``provider: azure``: one deployment of an Azure OpenAI resource. Authenticate with exactly one
    of ``api_key``, ``ad_token`` or ``entra_id``."""

    endpoint: HttpUrl
    """The resource endpoint, e.g. ``https://my-resource.openai.azure.com``."""
    deployment: str = Field(min_length=1)
    """The deployment name: requests go to ``/openai/deployments/<deployment>/chat/completions``."""
    api_version: str = Field("2024-10-21", min_length=1)
    """The ``api-version`` query parameter of every request."""
    model: str = ""
    """The model deployed (e.g. ``gpt-4o-mini``), for token counting; defaults to the deployment name."""
    ad_token: SecretStr | None = None
    """A Microsoft Entra ID access token (use ``${VAR}``), instead of ``api_key``."""
    entra_id: EntraIdOptions | None = None
    """Fetch Entra ID tokens with ``azure-identity`` instead of ``api_key``."""

    @model_validator(mode="before")
    @classmethod
    def _model_from_deployment(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("model") and isinstance(data.get("deployment"), str):
            return {**data, "model": data["deployment"]}
        return data

    @model_validator(mode="after")
    def _one_credential(self) -> AzureOpenAIModelConfig:
        credentials = (("api_key", self.api_key), ("ad_token", self.ad_token), ("entra_id", self.entra_id))
        given = [name for name, value in credentials if value is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of api_key, ad_token or entra_id (got {', '.join(given) or 'none'})")
        if self.base_url is not None:
            raise ValueError("Azure OpenAI takes `endpoint` (and `deployment`), not base_url")
        return self
