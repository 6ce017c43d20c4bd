"""The YAML config, as pydantic models. Validated once at load; the rest of the code trusts it.

Unknown keys are errors (``extra="forbid"``) so a typo is reported instead of silently ignored.
Secrets are ``SecretStr``: masked in every repr and log line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

__all__ = [
    "AgentConfig",
    "BudgetConfig",
    "ChannelsConfig",
    "Config",
    "DiscordChannelConfig",
    "FeishuChannelConfig",
    "HistoryConfig",
    "LoggingConfig",
    "ModelConfig",
    "ServerConfig",
    "SlackChannelConfig",
    "StorageConfig",
    "TenantConfig",
    "WeChatChannelConfig",
    "WeComChannelConfig",
    "WebSocketChannelConfig",
]


def _id_to_str(value: Any) -> Any:
    """Numeric ids (agent_id, app ids) may be written as YAML numbers or strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


def _no_trailing_space(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


StrId = Annotated[str, BeforeValidator(_id_to_str), AfterValidator(_no_trailing_space), Field(min_length=1)]
Secret = Annotated[SecretStr, Field(min_length=1)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
HttpUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` to listen on all."""
    port: int = Field(8080, ge=0, le=65535)
    """TCP port; 0 picks a free one (printed at start)."""
    shutdown_timeout_s: float = Field(20.0, gt=0, le=600)
    """On SIGTERM, how long in-flight turns may run before they are cancelled (their input stays stored)."""
    max_body_bytes: int = Field(1_048_576, ge=1024)
    """Largest webhook body accepted; larger gets HTTP 413."""


class StorageConfig(_Strict):
    url: str = "sqlite+aiosqlite:///./botframework.db"
    """SQLAlchemy async URL: ``sqlite+aiosqlite:///path`` (embedded, WAL) or ``postgresql+asyncpg://...``."""
    auto_migrate: bool = True
    """Apply Alembic migrations at start; off means run ``botframework db upgrade`` yourself."""
    pool_size: int = Field(10, ge=1, le=200)
    """Connections kept open (PostgreSQL)."""

    @model_validator(mode="after")
    def _driver(self) -> StorageConfig:
        if not (self.url.startswith("sqlite+aiosqlite://") or self.url.startswith("postgresql+asyncpg://")):
            raise ValueError(
                f"unsupported storage url {self.url.split('://')[0]!r}: use sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return self


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Root log level."""
    format: Literal["json", "text"] = "text"
    """``json``: one structured object per line (for collectors); ``text``: for a terminal."""


class BudgetConfig(_Strict):
    """Knobs of the context budget engine shared by all tenants."""

    safety_margin: float = Field(0.02, ge=0, le=0.5)
    """Fraction of the window kept free when the model's own encoding is known."""
    fallback_margin: float = Field(0.10, ge=0, le=0.5)
    """Fraction kept free when counting with the offline cl100k_base stand-in for another encoding."""
    output_floor: int = Field(256, ge=16)
    """A request never asks for fewer output tokens than this; below it, history is compacted."""
    default_output_cap: int = Field(16384, ge=16)
    """Output reserve when neither the agent nor the model sets a cap."""
    image_tokens: int = Field(765, ge=0)
    """Fixed prompt cost of one image (OpenAI's 'high detail 512px tile' figure)."""
    calibration_bounds: tuple[float, float] = (0.8, 1.5)
    """Provider-reported/own-count correction is clamped to this range."""
    allow_encoding_download: bool = True
    """Try to load each model's own tiktoken encoding (needs network or a TIKTOKEN_CACHE_DIR)."""


class ModelConfig(_Strict):
    provider: Literal["openai", "anthropic", "offline"]
    """``openai`` covers any OpenAI-compatible endpoint (Azure, DeepSeek, Qwen, vLLM, Ollama...)."""
    model: str = Field("offline-echo", min_length=1)
    """The provider's model id."""
    base_url: HttpUrl | None = None
    """Endpoint; defaults to the provider's public API."""
    api_key: SecretStr | None = None
    """Credential; required for openai and anthropic (use ``${VAR}``)."""
    context_window: int = Field(32768, ge=256)
    """Total tokens the model accepts (prompt + output)."""
    max_output_tokens: int = Field(4096, ge=16)
    """The model's hard cap on output tokens."""
    timeout_s: float = Field(60.0, gt=0, le=3600)
    """Per attempt, including the whole stream."""
    max_retries: int = Field(2, ge=0, le=2)
    """Retries of a retryable failure before the next candidate, per pass over the candidates;
    passes repeat until ``agent.turn_timeout_s`` runs out."""
    encoding: str | None = None
    """tiktoken encoding name; derived from ``model`` when omitted."""
    supports_images: bool = True
    """False: images in history are replaced by a note before sending."""
    supports_tools: bool = True
    """False: no tool schemas are sent to this model."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers for every request (e.g. an Azure api-version gateway header)."""
    tier: Name = "standard"
    """Cost tier label (e.g. small, standard, large); helpers may restrict themselves to some tiers."""

    @model_validator(mode="after")
    def _credentials(self) -> ModelConfig:
        if self.provider != "offline" and self.api_key is None:
            raise ValueError(f"api_key is required for provider {self.provider!r}")
        if self.max_output_tokens > self.context_window:
            raise ValueError(
                f"max_output_tokens ({self.max_output_tokens}) exceeds context_window ({self.context_window})"
            )
        return self


class HistoryConfig(_Strict):
    strategy: Literal["trim", "summarize"] = "trim"
    """``trim`` drops the oldest whole turns; ``summarize`` replaces them with a model-written summary."""
    fill_ratio: float = Field(0.7, ge=0.2, le=0.95)
    """When history overflows, drop down to this share of the history budget at once (keeps prompt caches warm)."""
    summary_model: Name | None = None
    """Model used to summarize; defaults to the agent's model."""
    summary_timeout_s: float = Field(30.0, gt=0, le=600)
    """Summarizing longer than this falls back to trimming for the turn."""
    summary_max_tokens: int = Field(1024, ge=64, le=16384)
    """Longest summary kept."""


class AgentConfig(_Strict):
    system_prompt: str = "You are a helpful assistant."
    """Always sent first; must fit the model's window with room to spare (checked at load)."""
    model: Name
    """A name from ``models:``."""
    fallback_models: list[Name] = Field(default_factory=list)
    """Names from ``models:``, tried in order when the primary fails."""
    max_output_tokens: int | None = Field(None, ge=16)
    """Output tokens the agent asks for; the model's cap and half the window also bound it."""
    max_tool_rounds: int = Field(8, ge=0, le=64)
    """Model calls that may request tools in one turn; the next call gets no tools."""
    tools: list[str] = Field(default_factory=list)
    """Enabled tools: built-in or entry-point names (``clock``), or ``package.module:attribute``."""
    temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature; provider default when omitted."""
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    """How old turns leave the window."""
    tool_timeout_s: float = Field(30.0, gt=0, le=3600)
    """A tool running longer becomes an error result."""
    turn_timeout_s: float = Field(120.0, gt=0, le=3600)
    """Time budget of a turn, tools included: its model calls keep retrying and falling back
    (Retry-After honoured, primary first) until it runs out; only then does the user get an error."""
    hooks: list[str] = Field(default_factory=list)
    """Turn hooks as import paths (``package.module:attribute``), applied in order."""


class WebSocketChannelConfig(_Strict):
    token: SecretStr | None = None
    """Shared secret clients pass as ``?token=``; omitted means open."""


class SlackChannelConfig(_Strict):
    signing_secret: Secret
    """Verifies every Events API request (HMAC-SHA256)."""
    bot_token: Secret
    """``xoxb-`` token for the Web API."""
    api_base_url: HttpUrl = "https://slack.com/api/"
    """Web API base; point it elsewhere for tests or proxies."""
    mode: Literal["events", "socket"] = "events"
    """``events``: webhook at /t/{tenant}/slack/events; ``socket``: Socket Mode (needs app_token)."""
    app_token: SecretStr | None = None
    """``xapp-`` token for Socket Mode."""
    live_updates: bool = False
    """Post a placeholder and edit it with chat.update while the reply is produced."""
    update_interval_s: float = Field(1.0, ge=0.2, le=30)
    """Minimum time between chat.update calls."""

    @model_validator(mode="after")
    def _socket(self) -> SlackChannelConfig:
        if self.mode == "socket" and self.app_token is None:
            raise ValueError("app_token is required when mode is 'socket'")
        return self


class DiscordChannelConfig(_Strict):
    bot_token: Secret
    """Bot token from the Developer Portal (enable the Message Content intent there)."""
    allowed_channels: list[StrId] = Field(default_factory=list)
    """Guild channel ids where the bot answers plain mentions; empty means every channel. DMs always."""
    api_base_url: HttpUrl | None = None
    """REST base (``https://discord.com/api/v10``); override for tests or proxies."""


class FeishuChannelConfig(_Strict):
    app_id: StrId
    """App ID (``cli_...``)."""
    app_secret: Secret
    """App secret."""
    encrypt_key: SecretStr | None = None
    """Event encryption key; when set, bodies are encrypted and signed."""
    verification_token: SecretStr | None = None
    """Verification token of the event subscription."""
    domain: HttpUrl = "https://open.feishu.cn"
    """``https://open.feishu.cn`` or ``https://open.larksuite.com``."""
    mode: Literal["webhook", "websocket"] = "webhook"
    """``webhook``: POST /t/{tenant}/feishu/events; ``websocket``: long connection."""
    live_updates: bool = False
    """Reply with a placeholder card and edit it (PATCH message) while the reply is produced."""
    update_interval_s: float = Field(1.0, ge=0.2, le=30)
    """Minimum time between card edits (Feishu allows 5 per second per message)."""

    @model_validator(mode="after")
    def _webhook_is_verifiable(self) -> FeishuChannelConfig:
        if self.mode == "webhook" and self.encrypt_key is None and self.verification_token is None:
            raise ValueError(
                "webhook mode needs encrypt_key or verification_token (or both); "
                "without them anyone could post events"
            )
        return self


class WeComChannelConfig(_Strict):
    corp_id: StrId
    """Corp id; also the receiveid inside encrypted messages."""
    agent_id: StrId
    """Self-built app agent id (number or string)."""
    secret: Secret
    """App secret for access tokens."""
    token: Secret
    """Callback token for msg_signature."""
    encoding_aes_key: Annotated[SecretStr, Field(min_length=43, max_length=43)]
    """43-character EncodingAESKey."""
    api_base_url: HttpUrl = "https://qyapi.weixin.qq.com"
    """API base."""
    message_format: Literal["markdown", "text"] = "markdown"
    """``markdown``: formatted in the WeCom app; ``text``: plain text, for users who read WeCom
    messages in WeChat (its WeCom plugin shows markdown messages as "unsupported")."""

    @staticmethod
    def check_aes_key(key: SecretStr | None) -> None:
        """An EncodingAESKey is 43 base64 characters (a 32-byte AES key without its ``=``)."""
        import base64
        import binascii

        if key is None:
            return
        try:
            base64.b64decode(key.get_secret_value() + "=", validate=True)
        except binascii.Error:
            raise ValueError("encoding_aes_key must be 43 base64 characters (A-Z, a-z, 0-9, +, /)") from None

    @model_validator(mode="after")
    def _aes_key_is_base64(self) -> WeComChannelConfig:
        self.check_aes_key(self.encoding_aes_key)
        return self


class WeChatChannelConfig(_Strict):
    app_id: StrId
    """Official Account AppID; receiveid in safe mode."""
    app_secret: Secret
    """AppSecret for access tokens."""
    token: Secret
    """Callback token."""
    encoding_aes_key: Annotated[SecretStr, Field(min_length=43, max_length=43)] | None = None
    """43-character EncodingAESKey for safe mode; omitted means plaintext mode."""
    api_base_url: HttpUrl = "https://api.weixin.qq.com"
    """API base."""

    @model_validator(mode="after")
    def _aes_key_is_base64(self) -> WeChatChannelConfig:
        WeComChannelConfig.check_aes_key(self.encoding_aes_key)
        return self


class ChannelsConfig(_Strict):
    """A key that is present turns the channel on (``websocket: {}`` is valid); absent is off."""

    websocket: WebSocketChannelConfig | None = None
    """Web chat: ``GET /t/{tenant}/ws`` and the page at ``/t/{tenant}/chat``."""
    slack: SlackChannelConfig | None = None
    """Slack Events API at ``POST /t/{tenant}/slack/events`` (or Socket Mode)."""
    discord: DiscordChannelConfig | None = None
    """Discord bot through the gateway (no route)."""
    feishu: FeishuChannelConfig | None = None
    """Feishu/Lark event subscription v2 at ``POST /t/{tenant}/feishu/events`` (or the long connection)."""
    wecom: WeComChannelConfig | None = None
    """WeCom self-built app callback at ``GET|POST /t/{tenant}/wecom/callback``."""
    wechat: WeChatChannelConfig | None = None
    """WeChat Official Account at ``GET|POST /t/{tenant}/wechat/callback`` (plaintext or safe mode)."""

    def enabled(self) -> dict[str, BaseModel]:
        """Channel name -> its config, for the channels that are on."""
        return {name: cfg for name in type(self).model_fields if (cfg := getattr(self, name)) is not None}


class TenantConfig(_Strict):
    agent: AgentConfig
    """The agent every channel of this tenant talks to."""
    channels: ChannelsConfig = Field(default_factory=ChannelsConfig)
    """Enabled channels and their credentials."""


class Config(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    """HTTP server."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """Database."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Log level and format."""
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    """Context budget engine (token counting, margins, output floor)."""
    models: dict[Name, ModelConfig] = Field(min_length=1)
    """Named model endpoints; agents refer to them by name."""
    tenants: dict[Name, TenantConfig] = Field(min_length=1)
    """Tenants are isolated: own conversations, channels and agent."""
