from __future__ import annotations

import io
import json
import logging

import pytest

from botframework.config import parse_config
from botframework.events import EventKind, TurnEvent, log_event
from botframework.logs import collect_secrets, setup_logging

CONFIG = """
logging: {level: INFO, format: json}
models:
  main: {provider: openai, model: gpt-4o-mini, api_key: sk-live-abcdef123456}
tenants:
  acme:
    agent: {model: main}
    channels:
      slack: {signing_secret: slack-signing-999999, bot_token: xoxb-token-777777}
"""


@pytest.fixture
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_every_configured_secret_is_redacted_from_log_lines(restore_logging: object) -> None:
    config = parse_config(CONFIG, env={})
    assert set(collect_secrets(config)) == {"sk-live-abcdef123456", "slack-signing-999999", "xoxb-token-777777"}
    out = io.StringIO()
    setup_logging(config, stream=out)
    log = logging.getLogger("test.redaction")
    log.warning("calling with key %s", "sk-live-abcdef123456")
    try:
        raise RuntimeError("token xoxb-token-777777 rejected")
    except RuntimeError:
        log.exception("delivery failed")
    text = out.getvalue()
    assert "sk-live-abcdef123456" not in text and "xoxb-token-777777" not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert records[0]["message"] == "calling with key ***"
    assert records[1]["level"] == "error" and "token *** rejected" in records[1]["exc"]


def test_turn_events_become_structured_log_records(restore_logging: object) -> None:
    out = io.StringIO()
    setup_logging(parse_config(CONFIG, env={}), stream=out)
    log_event(
        TurnEvent(
            kind=EventKind.FALLBACK,
            tenant="acme",
            origin="slack",
            conversation_id=3,
            turn_id="t1",
            data={
                "from_model": "main",
                "to_model": "backup",
                "error_kind": "rate_limited",
                "name": "would clash with LogRecord.name",
            },
        )
    )
    log_event(TurnEvent(kind=EventKind.TOOL_START, tenant="acme", origin="slack", conversation_id=3, turn_id="t1"))
    [record] = [json.loads(line) for line in out.getvalue().splitlines()]  # TOOL_START is DEBUG: filtered
    assert record["level"] == "warning" and record["event"] == "fallback" and record["tenant"] == "acme"
    assert record["event_data"]["to_model"] == "backup"
