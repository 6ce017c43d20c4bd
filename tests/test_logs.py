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


def test_run_time_credentials_are_redacted_by_pattern(restore_logging: object) -> None:
    """Access tokens fetched at run time are in no config; a chained transport error prints its URL."""
    out = io.StringIO()
    setup_logging(parse_config(CONFIG.replace("format: json", "format: text"), env={}), stream=out)
    log = logging.getLogger("test.redaction")
    try:
        try:
            raise ConnectionError(
                "POST https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=RUNTIME-TOKEN-42&debug=1 failed"
            )
        except ConnectionError as exc:
            raise RuntimeError("wecom message/send failed") from exc
    except RuntimeError:
        log.exception("delivery failed")
    log.warning("GET /cgi-bin/gettoken?corpid=ww1&corpsecret=CORP-SECRET-9 then app_secret=APP-SECRET-1")
    log.warning("sent with headers %s", {"Authorization": "Bearer t-g104abcDEF.ghi_jkl"})
    log.warning("counted input_tokens=812 output_tokens=40 max_tokens=1024")
    text = out.getvalue()
    for leaked in ("RUNTIME-TOKEN-42", "CORP-SECRET-9", "APP-SECRET-1", "t-g104abcDEF"):
        assert leaked not in text, leaked
    assert "access_token=***&debug=1" in text and "corpsecret=***" in text and "Bearer ***" in text
    assert "input_tokens=812 output_tokens=40 max_tokens=1024" in text  # counts are not credentials


def test_structured_extras_are_redacted_too(restore_logging: object) -> None:
    out = io.StringIO()
    setup_logging(parse_config(CONFIG, env={}), stream=out)
    logging.getLogger("test.redaction").warning(
        "model call", extra={"event_data": {"request": "key sk-live-abcdef123456", "url": "/x?token=abc123"}}
    )
    [record] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert record["event_data"] == {"request": "key ***", "url": "/x?token=***"}


def test_a_plugin_quiets_its_sdk_logger_and_setup_keeps_it_quiet(restore_logging: object) -> None:
    import channels.discord.adapter  # noqa: F401  (quiets "discord" at import)

    logging.getLogger("discord").setLevel(logging.NOTSET)
    setup_logging(parse_config(CONFIG), stream=io.StringIO())
    assert logging.getLogger("discord").level == logging.WARNING
