"""What a tool may return besides text: images for vision models, or an error it reports itself."""

from __future__ import annotations

from dataclasses import dataclass

from botframework.messages import ImagePart

__all__ = ["ToolOutput", "ToolTimeBudget"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolOutput:
    """A tool result with images, or one the tool itself marks as an error (MCP's ``isError``).

    Images are stored by reference (``media:`` URLs resolved before each model call); the tool
    loop keeps only as many as fit the result cap, like text.
    """

    text: str
    images: tuple[ImagePart, ...] = ()
    is_error: bool = False


class ToolTimeBudget:
    """The time the tools of one turn may still take, all rounds together (None: no limit)."""

    def __init__(self, total_s: float | None) -> None:
        self.total_s = total_s
        self.used_s = 0.0

    def remaining(self) -> float | None:
        return None if self.total_s is None else max(0.0, self.total_s - self.used_s)

    def spend(self, seconds: float) -> None:
        self.used_s += seconds
