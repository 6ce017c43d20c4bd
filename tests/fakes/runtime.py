"""The recording runtime lives in the test kit (``botframework.testing``), for plugin authors too."""

from botframework.testing.recording import AttachedSink, RecordingRuntime

__all__ = ["AttachedSink", "RecordingRuntime"]
