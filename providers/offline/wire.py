"""What the offline stand-in "sends": the request flattened to role/content pairs, which it counts
the way OpenAI bills a chat request (so budget and ledger figures are plausible)."""

from __future__ import annotations

from botframework.models.base import ModelRequest

__all__ = ["prompt_messages"]


def prompt_messages(request: ModelRequest) -> list[dict[str, str]]:
    """The system prompt, then each message's text with its tool calls' names and arguments."""
    prompt = [{"role": "system", "content": request.system}] if request.system else []
    prompt += [
        {"role": m.role, "content": m.text + "".join(c.name + c.arguments for c in m.tool_calls)}
        for m in request.messages
    ]
    return prompt
