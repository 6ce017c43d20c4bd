"""Start-up failures a person can act on, said in one line instead of a traceback."""

from __future__ import annotations

import errno
import socket

from botframework.errors import StartupError

__all__ = ["describe_os_error", "listen_error"]


def describe_os_error(exc: OSError) -> str:
    """``Permission denied: /var/lib/bot/bot.db`` rather than ``[Errno 13] ...``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}: {exc.filename}" if exc.filename else reason


def listen_error(exc: OSError, *, host: str, port: int, what: str = "server") -> StartupError:
    """Why the ``what`` listener could not bind ``host:port``, and what to pass instead."""
    flag = "--port" if what == "server" else "server.admin_port"
    if isinstance(exc, socket.gaierror):
        message = f"cannot resolve host {host!r} for the {what} listener; pass a valid --host (or set server.host)"
    elif exc.errno == errno.EADDRINUSE:
        message = f"port {port} on {host} is in use; pass {flag} with a free port (or stop what holds it)"
    elif exc.errno == errno.EACCES:
        message = f"not allowed to listen on port {port} (ports below 1024 need privileges); pass {flag}"
    elif exc.errno == errno.EADDRNOTAVAIL:
        message = f"{host} is not an address of this machine; pass --host (e.g. 127.0.0.1 or 0.0.0.0)"
    else:
        message = f"cannot listen on {host}:{port} for the {what}: {describe_os_error(exc)}"
    return StartupError(message)
