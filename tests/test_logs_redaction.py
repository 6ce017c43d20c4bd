"""Log redaction gaps a security review found: each value below leaked on the base version."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from botframework.config import parse_config
from botframework.logs import collect_secrets, setup_logging

CONFIG = """
logging: {level: INFO, format: json}
storage: {url: "postgresql+asyncpg://bot:pg-pass-7@db.internal:5432/bot"}
models:
  main:
    provider: openai
    model: gpt-4o-mini
    api_key: 'sk-"quoted\\key'
    headers: {X-Gateway-Key: gw-header-secret-123, Authorization: "Bearer hdr-bearer-456789"}
tenants:
  acme:
    agent: {model: main}
    channels:
      websocket: {token: "tiny"}
"""


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    setup_logging(parse_config(CONFIG, env={}), stream=out)
    try:
        yield logging.getLogger("test.redaction"), out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_config_secrets_include_short_ones_the_database_password_and_header_values() -> None:
    secrets = set(collect_secrets(parse_config(CONFIG, env={})))
    assert {"tiny", "pg-pass-7", "gw-header-secret-123", "hdr-bearer-456789", 'sk-"quoted\\key'} <= secrets


@pytest.mark.parametrize(
    ("message", "leak"),
    [
        ('vendor said {"access_token": "rt-json-token-1", "expires_in": 7200}', "rt-json-token-1"),
        ('nested {"body": "{\\"access_token\\": \\"rt-escaped-2\\"}"}', "rt-escaped-2"),
        ("Authorization: Basic dXNlcjpzM2NyZXQ=", "dXNlcjpzM2NyZXQ="),
        ("a token from elsewhere xoxb-1111-2222-abcdefghij", "xoxb-1111-2222-abcdefghij"),
        ("an unrelated key sk-ant-api03-abcdefghijklmnop", "sk-ant-api03-abcdefghijklmnop"),
        ("connect to postgresql://other:pw-in-url@10.0.0.1/db failed", "pw-in-url"),
        ("the configured password pg-pass-7 appears", "pg-pass-7"),
        ("gateway header gw-header-secret-123 sent", "gw-header-secret-123"),
        ("token is tiny", "tiny"),
    ],
)
def test_patterns_and_config_secrets_are_redacted(
    logged: tuple[logging.Logger, io.StringIO], message: str, leak: str
) -> None:
    log, out = logged
    log.warning(message)
    log.warning("as an argument: %s", message)
    log.warning("as an extra", extra={"event_data": {"detail": message}})
    text = out.getvalue()
    assert leak not in text, text
    assert len(text.splitlines()) == 3


def test_a_secret_with_a_quote_does_not_leak_through_json_escaping(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, out = logged
    log.warning("key %s", 'sk-"quoted\\key')
    log.warning("in an extra", extra={"event_data": {"key": 'sk-"quoted\\key'}})
    text = out.getvalue()
    for line in text.splitlines():
        record = json.loads(line)
        assert "quoted" not in json.dumps(record), line
