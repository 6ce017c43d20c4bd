"""Interactive channel logins: ``botframework login <channel> --config F --tenant T``.

Some channels have no credentials to write into a config file: a person authorizes the bot once,
for instance by scanning a QR code with a phone, and the vendor hands back a session. Such a channel
sets ``supports_login`` and implements :meth:`ChannelAdapter.login
<botframework.channel.ChannelAdapter.login>`; the command line loads the channel plugin by name,
hands it the tenant's options, a :class:`~botframework.channel_state.ChannelState` in the database
and a :class:`LoginConsole`, and the channel stores the session there. A running server picks the
new session up by itself.

The console is the only way a login talks to the operator, so a login can run under the CLI or in
a test alike; it never receives secrets to print.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Protocol, TextIO

__all__ = ["LoginConsole", "TextConsole"]


class LoginConsole(Protocol):
    """Where a login shows its progress (a QR code, "scanned, confirm on the phone") and asks questions."""

    def say(self, text: str) -> None:
        """Show ``text`` (one or more lines) to the operator."""

    async def ask(self, prompt: str) -> str:
        """Show ``prompt`` and return the line the operator typed ("" when nobody can answer)."""


class TextConsole:
    """A LoginConsole on text streams (the terminal by default)."""

    def __init__(self, out: TextIO | None = None, inp: TextIO | None = None) -> None:
        self._out = out
        self._inp = inp

    def say(self, text: str) -> None:
        out = self._out or sys.stdout
        out.write(text if text.endswith("\n") else text + "\n")
        out.flush()

    async def ask(self, prompt: str) -> str:
        self.say(prompt)
        line: str = await asyncio.to_thread((self._inp or sys.stdin).readline)
        return line.strip()
