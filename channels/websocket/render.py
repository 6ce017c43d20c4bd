"""Reply -> server frames. The full text goes in one frame: a WebSocket has no size limit to chunk for."""

from __future__ import annotations

from typing import Any

from botframework.channel import Outbound

__all__ = ["delta_frame", "final_frames", "reset_frame", "status_frame"]


def delta_frame(reply_to: str, text: str) -> dict[str, Any]:
    return {"type": "delta", "reply_to": reply_to, "text": text}


def reset_frame(reply_to: str) -> dict[str, Any]:
    return {"type": "reset", "reply_to": reply_to}


def status_frame(reply_to: str, text: str) -> dict[str, Any]:
    return {"type": "status", "reply_to": reply_to, "text": text}


def final_frames(outbound: Outbound) -> list[dict[str, Any]]:
    """One terminal frame per message the reply answers; steered-in ones say which reply covers them."""
    primary = str(outbound.primary.reply_target["id"])
    frames: list[dict[str, Any]] = []
    for i, event in enumerate(outbound.events):
        reply_to = str(event.reply_target["id"])
        reply = outbound.reply
        frame: dict[str, Any]
        if reply.is_error:
            frame = {
                "type": "error",
                "reply_to": reply_to,
                "message": reply.text,
                "kind": str(reply.error_kind),
            }
        else:
            frame = {"type": "done", "reply_to": reply_to, "text": reply.text, "model": reply.model}
        if i > 0:
            frame["merged_into"] = primary
        frames.append(frame)
    return frames
