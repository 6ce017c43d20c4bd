"""``provider: offline``: a deterministic stand-in model, so the example config runs anywhere."""

from providers.offline.client import OFFLINE_LABEL, OfflineClient
from providers.offline.config import OfflineModelConfig

__all__ = ["OFFLINE_LABEL", "OfflineClient", "OfflineModelConfig"]
