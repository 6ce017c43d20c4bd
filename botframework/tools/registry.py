"""Resolve tool names from config: built-ins, then the ``botframework.tools`` entry points, then
``package.module:attribute`` import paths. Resolution happens once at load so a typo is a config error.

``mcp:<server>[/<tool>]`` references are not Python tools: their tools are listed by the server at run
time (``botframework.tools.mcp``); :func:`resolve_tools` leaves them out.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import entry_points

from botframework.tools.base import Tool
from botframework.tools.builtin import BUILTIN_TOOLS
from botframework.tools.mcp.config import is_mcp_ref

__all__ = ["ENTRY_POINT_GROUP", "resolve_tool", "resolve_tools"]

ENTRY_POINT_GROUP = "botframework.tools"


def resolve_tool(ref: str) -> Tool:
    """The Tool named ``ref``. Raises LookupError with what to do next."""
    if ref in BUILTIN_TOOLS:
        return BUILTIN_TOOLS[ref]
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise LookupError(f"cannot import tool {ref!r}: {exc}") from exc
    else:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == ref]
        if not found:
            known = sorted({*BUILTIN_TOOLS, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
            raise LookupError(
                f"unknown tool {ref!r} (known: {', '.join(known)}; or give an import path 'package.module:tool')"
            )
        obj = found[0].load()
    if not isinstance(obj, Tool):
        raise LookupError(f"{ref!r} is a {type(obj).__name__}, not a botframework Tool (use @tool)")
    return obj


def resolve_tools(refs: Sequence[str]) -> list[Tool]:
    """The Python tools among ``refs`` (MCP references are skipped)."""
    tools = [resolve_tool(r) for r in refs if not is_mcp_ref(r)]
    names = [t.name for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LookupError(f"tool name(s) enabled twice: {', '.join(dupes)}")
    return tools
