"""Test kit for channel plugins (``botframework.testing``), for the shipped channels and yours.

- :class:`RecordingRuntime`: the core as an adapter sees it, recording every call (unit tests).
- :func:`serve_adapter`: mounts an adapter's routes as the server does (unit tests over HTTP).
- :class:`ChannelHarness` + :class:`ConformanceSuite`: the conformance run through the real runtime.
- :func:`scratch_database`: an empty PostgreSQL database for a test, dropped afterwards.

``docs/plugins.md`` shows how a channel package uses them.
"""

from botframework.testing.databases import create_scratch_database, drop_scratch_database, scratch_database
from botframework.testing.harness import (
    AdapterClient,
    BotHarness,
    ChannelHarness,
    RecordedCase,
    serve_adapter,
    wait_until,
)
from botframework.testing.recording import AttachedSink, RecordingRuntime
from botframework.testing.scripted_model import ScriptedModel, Step
from botframework.testing.suite import ConformanceSuite, long_markdown_reply

__all__ = [
    "AdapterClient",
    "AttachedSink",
    "BotHarness",
    "ChannelHarness",
    "ConformanceSuite",
    "RecordedCase",
    "RecordingRuntime",
    "ScriptedModel",
    "Step",
    "create_scratch_database",
    "drop_scratch_database",
    "long_markdown_reply",
    "scratch_database",
    "serve_adapter",
    "wait_until",
]
