"""Built-in tools: ``clock`` here; ``summarize``, ``translate``, ``extract_entities`` and ``classify``
(tools that ask a model through the structured helper) in :mod:`botframework.tools.language`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botframework.errors import ToolArgumentsError
from botframework.tools.base import ToolContext, tool
from botframework.tools.language import classify, extract_entities, summarize, translate

__all__ = ["BUILTIN_TOOLS", "clock"]


@tool(
    name="clock",
    description="The current date and time. Optionally in an IANA time zone such as 'Europe/Paris'.",
    parameters={
        "type": "object",
        "properties": {"timezone": {"type": "string", "description": "IANA time zone name; UTC if omitted"}},
        "additionalProperties": False,
    },
)
async def clock(args: Mapping[str, Any], ctx: ToolContext) -> str:
    name = args.get("timezone") or "UTC"
    try:
        zone = UTC if name == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolArgumentsError("clock", f"unknown time zone {name!r}") from None
    now = datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({now.strftime('%A')}, {name})"


BUILTIN_TOOLS = {t.name: t for t in (clock, summarize, translate, extract_entities, classify)}
