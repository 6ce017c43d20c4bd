"""botframework: a multi-channel chat bot framework.

Channels turn inbound events into a neutral ``Turn``; one invocation service loads history, fits
it to the model's budget, calls the model (with fallbacks and tools) and returns a ``Reply`` that
the channel renders.
"""

__version__ = "0.1.0"
