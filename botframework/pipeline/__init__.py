"""How accepted turns reach the code that runs them: in process (embedded) or through a shared queue.

See :mod:`botframework.pipeline.queue` for the seam, :mod:`botframework.pipeline.scaleout` for the
procrastinate queue, :mod:`botframework.pipeline.relay` for live replies across processes and
:mod:`botframework.pipeline.worker` for the ``botframework worker`` process.
"""

from __future__ import annotations

from botframework.pipeline.queue import EmbeddedQueue, TurnQueue
from botframework.pipeline.roles import Role

__all__ = ["EmbeddedQueue", "Role", "TurnQueue"]
