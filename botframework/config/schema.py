"""The YAML config, as pydantic models. Validated once at load; the rest of the code trusts it.

Unknown keys are errors (``extra="forbid"``) so a typo is reported instead of silently ignored.
Secrets are ``SecretStr``: masked in every repr and log line. The options of each channel and of
each model provider belong to that plugin (its ``config_model``) and are validated by it, in place
(:mod:`botframework.config.sections`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from botframework.config.sections import validate_channels, validate_model
from botframework.config.types import HttpUrl, Name, Secret, StrictModel, StrId
from botframework.tools.mcp.config import McpServerConfig

__all__ = [
    "AgentConfig",
    "BudgetConfig",
    "Config",
    "HistoryConfig",
    "HttpUrl",
    "LimitsConfig",
    "LoggingConfig",
    "ModelConfig",
    "Name",
    "QueueConfig",
    "Secret",
    "ServerConfig",
    "StorageConfig",
    "StrId",
    "StructuredHelperConfig",
    "TenantConfig",
]

_Strict = StrictModel


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` to listen on all."""
    port: int = Field(8080, ge=0, le=65535)
    """TCP port; 0 picks a free one (printed at start)."""
    shutdown_timeout_s: float = Field(20.0, gt=0, le=600)
    """On SIGTERM, how long in-flight turns may run before they are cancelled (their input stays stored)."""
    max_body_bytes: int = Field(1_048_576, ge=1024)
    """Largest webhook body accepted; larger gets HTTP 413."""
    admin_port: int | None = Field(None, ge=0, le=65535)
    """Serve ``/metrics`` on this separate port (on ``admin_host``) instead of the public listener."""
    admin_host: str = "127.0.0.1"
    """Interface of the admin listener; keep it private."""
    metrics_token: SecretStr | None = Field(None, min_length=16)
    """Bearer token ``/metrics`` requires (``Authorization: Bearer ...``). Without it and without
    ``admin_port``, ``/metrics`` answers only when ``host`` is a loopback address."""


class StorageConfig(_Strict):
    url: str = "sqlite+aiosqlite:///./botframework.db"
    """SQLAlchemy async URL: ``sqlite+aiosqlite:///path`` (embedded, WAL) or ``postgresql+asyncpg://...``."""
    auto_migrate: bool = True
    """Apply Alembic migrations at start; off means run ``botframework db upgrade`` yourself."""
    pool_size: int = Field(10, ge=1, le=200)
    """Connections kept open (PostgreSQL)."""
    retention_days: int | None = Field(None, ge=1, le=36_500)
    """Delete conversations' messages, turns and replies older than this many days (``serve`` does it
    every few hours; ``botframework db prune`` on demand). Omitted: keep everything."""

    @model_validator(mode="after")
    def _driver(self) -> StorageConfig:
        if not (self.url.startswith("sqlite+aiosqlite://") or self.url.startswith("postgresql+asyncpg://")):
            raise ValueError(
                f"unsupported storage url {self.url.split('://')[0]!r}: use sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return self


class QueueConfig(_Strict):
    """Where accepted turns wait and who runs them (see "Running on several machines" in the README)."""

    engine: Literal["embedded", "procrastinate"] = "embedded"
    """``embedded``: ``serve`` runs every turn itself (SQLite or PostgreSQL). ``procrastinate``: turns
    are jobs in PostgreSQL that any ``botframework worker`` (or ``serve``) runs. ``serve --role
    ingress`` and ``worker`` always use ``procrastinate``."""
    concurrency: int = Field(10, ge=1, le=1000)
    """Turns one process runs at once from the shared queue (``worker --concurrency`` overrides it)."""
    heartbeat_s: float = Field(2.0, gt=0, le=60)
    """How often a worker tells the database it is alive."""
    stalled_after_s: float = Field(10.0, gt=0, le=600)
    """A worker silent this long is dead: its running turns go back to the queue for another worker.
    At least three heartbeats."""
    live_interval_ms: int = Field(50, ge=0, le=1000)
    """Streamed text from a worker is batched this long before it is relayed to the socket's process."""

    @model_validator(mode="after")
    def _stalled(self) -> QueueConfig:
        if self.stalled_after_s < 3 * self.heartbeat_s:
            raise ValueError("queue.stalled_after_s must be at least three heartbeats (3 x queue.heartbeat_s)")
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
    """Options every model provider understands. A provider plugin may extend them (its
    ``config_model`` subclasses this), and validates ``models.<name>`` with its own model."""

    provider: Name
    """The provider plugin: an entry point name of the group ``botframework.providers``, shipped
    with botframework or from an installed package (see the providers in the README)."""
    model: str = Field(min_length=1)
    """The provider's model id."""
    base_url: HttpUrl | None = None
    """Endpoint; defaults to the provider's public API."""
    api_key: SecretStr | None = None
    """Credential (use ``${VAR}``); providers that call a hosted API require it."""
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
    """Extra HTTP headers for every request (e.g. a gateway's routing or tenant header)."""
    tier: Name = "standard"
    """Cost tier label (e.g. small, standard, large); helpers may restrict themselves to some tiers."""

    def __init__(self, /, **data: Any) -> None:
        if type(self) is ModelConfig:  # the wrap validator returns the plugin's instance; this one stays empty
            raise TypeError(
                "ModelConfig(...) cannot pick the provider's own options model: use "
                "ModelConfig.model_validate({...}) or the provider plugin's config_model"
            )
        super().__init__(**data)

    def tiktoken_model(self) -> str | None:
        """The model id whose tiktoken encoding counts this model's tokens when ``encoding`` is not
        set, or None when the provider's models have none (they are then counted with the bundled
        fallback encoding plus ``budget.fallback_margin``, calibrated against reported usage).
        A provider whose model ids are not OpenAI model names overrides this."""
        return self.model

    @model_validator(mode="wrap")
    @classmethod
    def _by_provider(cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        """The provider's own options model validates the section (it may add fields)."""
        if cls is not ModelConfig:
            return handler(data)
        return validate_model(cls, data, handler, info)

    @model_validator(mode="after")
    def _output_fits(self) -> ModelConfig:
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


class StructuredHelperConfig(_Strict):
    """Which models one-shot calls from tools and hooks (``ctx.models``, the structured helper) use."""

    models: list[Name] = Field(default_factory=list)
    """Names from ``models:``, tried in order; empty means the agent's ``model`` then ``fallback_models``."""
    allowed_tiers: list[Name] | None = Field(None, min_length=1)
    """``models.*.tier`` values helper calls may use, cheapest first: candidates are tried in this tier
    order, and a call that would need another tier is refused (``tier_not_allowed``). Omitted: any tier."""

    @model_validator(mode="after")
    def _distinct(self) -> StructuredHelperConfig:
        for name, values in (("models", self.models), ("allowed_tiers", self.allowed_tiers or [])):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{name} lists {', '.join(map(repr, repeated))} more than once")
        return self


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
    """Enabled tools: built-in or entry-point names (``clock``), ``package.module:attribute``, or the tools of
    an MCP server from ``mcp_servers``: ``mcp:<server>`` (all of them) or ``mcp:<server>/<tool>``."""
    temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature; provider default when omitted."""
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    """How old turns leave the window."""
    tool_timeout_s: float = Field(30.0, gt=0, le=3600)
    """A tool running longer becomes an error result (``mcp_servers.*.timeout_s`` overrides it per server)."""
    tool_budget_s: float | None = Field(None, gt=0, le=86400)
    """Time all tool calls of one turn may take together; later calls get an error result. No limit when omitted."""
    turn_timeout_s: float = Field(120.0, gt=0, le=3600)
    """Time budget of a turn, tools included: its model calls keep retrying and falling back
    (Retry-After honoured, primary first) until it runs out; only then does the user get an error."""
    hooks: list[str] = Field(default_factory=list)
    """Turn hooks, applied in order: names from the ``botframework.hooks`` entry points, or import paths
    (``package.module:attribute``)."""
    structured: StructuredHelperConfig = Field(default_factory=StructuredHelperConfig)
    """Models and tier allowlist for the model calls tools make (``summarize``, ``translate``, ...)."""


class LimitsConfig(_Strict):
    """What one user, conversation or tenant may cost; a message over a limit is refused with a clear
    message to its sender and counted in /metrics (``botframework_limit_refusals_total``)."""

    max_input_chars: int = Field(32_000, ge=1, le=1_000_000)
    """Longest user message accepted; longer ones are not stored."""
    max_queued_per_conversation: int = Field(20, ge=1, le=10_000)
    """Messages of one conversation accepted and not yet answered; more are refused until it catches up."""
    max_concurrent_model_calls: int = Field(16, ge=1, le=10_000)
    """Model calls of this tenant running at once (per process); more wait for a free slot."""
    daily_tokens_per_user: int | None = Field(None, ge=1)
    """Model tokens (input + output, from the ledger) one user's turns may use per UTC day. Omitted: no cap."""
    daily_tokens_per_tenant: int | None = Field(None, ge=1)
    """Model tokens the whole tenant may use per UTC day; set it before exposing the bot. Omitted: no cap."""


class TenantConfig(_Strict):
    agent: AgentConfig
    """The agent every channel of this tenant talks to."""
    channels: Annotated[dict[Name, BaseModel], WrapValidator(validate_channels)] = Field(default_factory=dict)
    """Enabled channels: each key names a channel plugin (entry point group ``botframework.channels``)
    and holds that channel's options; a key that is present turns the channel on (``websocket: {}``)."""
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    """Input length, queue depth, model concurrency and daily token quotas."""


class Config(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    """HTTP server."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """Database."""
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    """Log level and format."""
    queue: QueueConfig = Field(default_factory=QueueConfig)
    """Turn queue: in process, or shared by several processes on PostgreSQL."""
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    """Context budget engine (token counting, margins, output floor)."""
    models: dict[Name, ModelConfig] = Field(min_length=1)
    """Named model endpoints; agents refer to them by name."""
    tenants: dict[Name, TenantConfig] = Field(min_length=1)
    """Tenants are isolated: own conversations, channels and agent."""
    mcp_servers: dict[Name, McpServerConfig] = Field(default_factory=dict)
    """MCP servers (stdio ``command`` or Streamable HTTP ``url``) whose tools agents list as ``mcp:<name>``."""
