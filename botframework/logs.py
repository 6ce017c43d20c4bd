"""Logging setup: text for a terminal or one JSON object per line, with secrets redacted (a second
line of defence behind SecretStr).

Two kinds of secret: the configured ones (every SecretStr value whatever its length, the password
in ``storage.url``, every value of a ``headers`` mapping) replaced wherever they appear, in their
plain and JSON-escaped spellings; and credentials obtained at run time, which no config knows,
redacted by pattern: tokens in query strings and JSON fields (``access_token=...``,
``"access_token": "..."``), ``Bearer``/``Basic`` credentials, Slack ``xox?-`` and ``sk-`` style
API keys, and the password of any ``scheme://user:password@host`` URL.

Redaction runs twice: on a record's arguments and structured extras *before* formatting (so a
formatter's escaping, e.g. JSON's ``\"``, cannot split a secret from its pattern), and on the
final line (which also covers tracebacks).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from botframework.config.schema import Config

__all__ = ["collect_secrets", "quiet_loggers", "redact_text", "setup_logging"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def collect_secrets(config: Config) -> list[str]:
    """Every secret value the config holds, longest first (so a secret inside another goes after it)."""
    found: list[str] = []

    def walk(value: Any, field: str = "") -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), name)
        elif isinstance(value, dict):
            for v in value.values():
                if field == "headers" and isinstance(v, str):
                    found.append(v)
                    found.extend(part for part in v.split() if len(part) >= 8)  # "Bearer <token>"
                else:
                    walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(config)
    try:
        password = make_url(config.storage.url).password
    except ArgumentError:
        password = None
    if password:
        found.append(str(password))
    return sorted({s for s in found if s}, key=len, reverse=True)


_KEYS = r"(?:[a-z_]*access_token|refresh_token|api_key|apikey|[a-z_]*secret|password|passwd|token|key)"
_CREDENTIAL_PARAMS = re.compile(rf"(?i)\b({_KEYS})=([^&\s'\"\\]+)")
_JSON_FIELDS = re.compile(rf'(?i)(\\*"{_KEYS}\\*"\s*:\s*\\*")((?:[^"\\]|\\[^"\\]|\\\\)*?)(\\*")')
_AUTH_SCHEMES = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/\-]+=*")
_API_KEYS = re.compile(r"\b(?:xox[abposre]|xapp)-[A-Za-z0-9-]{6,}|\bsk-[A-Za-z0-9_\-]{8,}")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@'\"]+:)([^@\s'\"]+)@")


def _spellings(secrets: Iterable[str]) -> list[str]:
    """Each secret plus its JSON-escaped form (a secret with a quote or a backslash is written escaped)."""
    out = set()
    for secret in secrets:
        out.add(secret)
        escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
        out.add(escaped)
        out.add(json.dumps(secret)[1:-1])
    return sorted(out, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets and any run-time credential masked."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _JSON_FIELDS.sub(r"\1***\3", text)
    text = _CREDENTIAL_PARAMS.sub(r"\1=***", text)
    text = _AUTH_SCHEMES.sub(r"\1\2***", text)
    return _API_KEYS.sub("***", text)


def _redact_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v, secrets) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value), secrets)


class _RedactRecord(logging.Filter):
    """Redacts a record's message arguments and structured extras before any formatter sees them."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: keep what there is
            message = str(record.msg)
        record.msg = redact_text(message, self._secrets)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_"):
                setattr(record, key, _redact_value(value, self._secrets))
        return True


class _Redacting(logging.Formatter):
    """Wraps the real formatter and redacts the whole formatted line (tracebacks included)."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets = _spellings(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self._inner.format(record), self._secrets)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def setup_logging(config: Config, *, stream: Any = None) -> None:
    """Configure the root logger once per process from ``config.logging``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    inner = (
        _JsonFormatter()
        if config.logging.format == "json"
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    secrets = collect_secrets(config)
    handler.addFilter(_RedactRecord(_spellings(secrets)))
    handler.setFormatter(_Redacting(inner, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.logging.level)
    quiet_loggers("aiohttp.access", "httpx", "httpx2", "httpcore", "openai", "anthropic", "mcp", *_quieted)


_quieted: list[str] = []


def quiet_loggers(*names: str) -> None:
    """Keep chatty SDK loggers at WARNING unless the whole process logs more verbosely.

    Plugins call this for their own SDKs at import; the names are remembered, so a later
    ``setup_logging`` applies the same rule."""
    root_level = logging.getLogger().level
    for name in names:
        if name not in _quieted:
            _quieted.append(name)
        logging.getLogger(name).setLevel(max(logging.WARNING, root_level))
