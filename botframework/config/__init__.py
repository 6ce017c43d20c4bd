"""Configuration: the pydantic schema and the YAML loader."""

from botframework.config.loader import load_config, parse_config
from botframework.config.schema import (
    AgentConfig,
    BudgetConfig,
    Config,
    HistoryConfig,
    ModelConfig,
    TenantConfig,
)

__all__ = [
    "AgentConfig",
    "BudgetConfig",
    "Config",
    "HistoryConfig",
    "ModelConfig",
    "TenantConfig",
    "load_config",
    "parse_config",
]
