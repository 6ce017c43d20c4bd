"""The states a turn and a delivery go through, and why a turn ended without an answer.

Stored as their string values; typed here so the code that moves a turn or a delivery along cannot
misspell a state, and a reader finds every state in one place.
"""

from __future__ import annotations

import enum

__all__ = ["DeliveryStatus", "TurnFailure", "TurnStatus"]


class TurnStatus(enum.StrEnum):
    """A turn: accepted (``queued``), ``running``, then ``done``, ``cancelled`` or ``merged`` into the
    turn that was running when it arrived (steering)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"
    MERGED = "merged"

    @property
    def is_open(self) -> bool:
        """Accepted and not finished: a restart runs it (again)."""
        return self in (TurnStatus.QUEUED, TurnStatus.RUNNING)


class DeliveryStatus(enum.StrEnum):
    """A reply: recorded ``pending`` before it is sent, then ``sent``, or ``failed`` for good."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class TurnFailure(enum.StrEnum):
    """Why a turn's reply is an error message, when it is not a model error (``ErrorKind``)."""

    CANCELLED = "cancelled"
    ABORTED = "aborted"
    INPUT_TOO_LARGE = "input_too_large"
    INTERNAL = "internal"
