"""Tools the model may call: definition, built-ins, name resolution, execution."""

from botframework.tools.base import Tool, ToolContext, tool
from botframework.tools.output import ToolOutput
from botframework.tools.registry import resolve_tool, resolve_tools

__all__ = ["Tool", "ToolContext", "ToolOutput", "resolve_tool", "resolve_tools", "tool"]
