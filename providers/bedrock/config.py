"""Options of ``provider: bedrock``."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from botframework.config.schema import ModelConfig

__all__ = ["BedrockModelConfig"]


class BedrockModelConfig(ModelConfig):
    """``provider: bedrock``: an Anthropic model on Amazon Bedrock (``model`` is the Bedrock model id
    or inference profile, e.g. ``us.anthropic.claude-sonnet-4-5-20250929-v1:0``). Requests are
    signed with SigV4: the access key below, else ``aws_profile``, else the standard AWS chain
    (environment, shared files, instance or task role). ``api_key`` is a Bedrock API key instead."""

    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    """AWS region of the Bedrock runtime, e.g. ``us-east-1``; ``base_url`` defaults to
    ``https://bedrock-runtime.<region>.amazonaws.com`` (set it for a VPC endpoint)."""
    aws_access_key_id: SecretStr | None = None
    """Access key id (use ``${VAR}``); with ``aws_secret_access_key``."""
    aws_secret_access_key: SecretStr | None = None
    """Secret access key (use ``${VAR}``)."""
    aws_session_token: SecretStr | None = None
    """Session token of temporary credentials (use ``${VAR}``)."""
    aws_profile: str | None = None
    """A profile of the shared AWS config files, instead of keys."""

    @model_validator(mode="after")
    def _credentials(self) -> BedrockModelConfig:
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("aws_access_key_id and aws_secret_access_key go together: set both or neither")
        keys = self.aws_access_key_id is not None or self.aws_profile is not None
        if self.api_key is not None and keys:
            raise ValueError("use either api_key (a Bedrock API key) or AWS credentials, not both")
        if self.aws_session_token is not None and self.aws_access_key_id is None:
            raise ValueError("aws_session_token needs aws_access_key_id and aws_secret_access_key")
        return self

    def tiktoken_model(self) -> str | None:
        """Claude models have no public tiktoken encoding: counted with the fallback, calibrated."""
        return None
