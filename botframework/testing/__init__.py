"""Test kit for channel adapters (``botframework.testing``): run the conformance suite on yours.

See ``ConformanceSuite`` and ``ChannelHarness``; the README's "add a channel" checklist shows how.
"""

from botframework.testing.harness import (
    AdapterClient,
    BotHarness,
    ChannelHarness,
    RecordedCase,
    serve_adapter,
    wait_until,
)
from botframework.testing.scripted_model import ScriptedModel, Step
from botframework.testing.suite import ConformanceSuite, long_markdown_reply

__all__ = [
    "AdapterClient",
    "BotHarness",
    "ChannelHarness",
    "ConformanceSuite",
    "RecordedCase",
    "ScriptedModel",
    "Step",
    "long_markdown_reply",
    "serve_adapter",
    "wait_until",
]
