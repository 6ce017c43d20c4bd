"""Options of ``provider: offline``."""

from __future__ import annotations

from pydantic import Field

from botframework.config.schema import ModelConfig

__all__ = ["OfflineModelConfig"]


class OfflineModelConfig(ModelConfig):
    """``provider: offline``: needs no URL or key; every option has a default."""

    model: str = Field("offline-echo", min_length=1)
    """The name the stand-in reports as its model id."""

    def tiktoken_model(self) -> str | None:
        """No real model: counted with the bundled fallback encoding, which is also what it bills with."""
        return None
