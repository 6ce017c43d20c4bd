"""Logging setup: text for a terminal or one JSON object per line, with secrets redacted from every
formatted line (a second line of defence behind SecretStr).

Two kinds of secret: the configured ones (every SecretStr value, replaced wherever it appears) and
the ones obtained at run time, which no config knows: vendor access tokens that travel in query
strings (``access_token=...``, ``tenant_access_token=...``) and bearer credentials. An SDK or
transport error chained under ours (``raise ... from exc``) often prints its request URL, so the
second kind is redacted by pattern. Redaction runs on the final line, so the message, structured
extras and tracebacks are all covered.
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

from botframework.config.schema import Config

__all__ = ["collect_secrets", "redact_text", "setup_logging"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def collect_secrets(config: Config) -> list[str]:
    """Every SecretStr value in the config (long enough to be worth redacting)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if len(secret) >= 6:
                found.append(secret)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(config)
    return sorted(set(found), key=len, reverse=True)


_CREDENTIAL_PARAMS = re.compile(
    r"(?i)\b((?:[a-z]+_)?access_token|refresh_token|api_key|key|token|[a-z_]*secret)=([^&\s'\"\\]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/\-]+=*")


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets and any run-time credential (query parameter, bearer) masked."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = _CREDENTIAL_PARAMS.sub(r"\1=***", text)
    return _BEARER.sub(r"\1***", text)


class _Redacting(logging.Formatter):
    """Wraps the real formatter and redacts the whole formatted line."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets = sorted(set(secrets), key=len, reverse=True)

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
    handler.setFormatter(_Redacting(inner, collect_secrets(config)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.logging.level)
    noisy_loggers = ("aiohttp.access", "httpx", "httpx2", "httpcore", "openai", "anthropic", "discord", "slack_bolt")
    for noisy in (*noisy_loggers, "mcp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
