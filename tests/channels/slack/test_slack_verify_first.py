"""Slack: the signature is checked on the raw bytes before anything parses them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from botframework.testing import serve_adapter as serve
from tests.channels.slack.test_slack_adapter import SECRET, make_adapter
from tests.fakes.runtime import RecordingRuntime
from tests.fakes.slack_api import FakeSlack, signed_headers


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


GARBAGE = ["[]", "null", '{"type": "event_callback", "event": ', "[" * 100_000, '"x"', "9" * 400]


@pytest.mark.parametrize("body", GARBAGE, ids=["array", "null", "truncated", "deep", "string", "number"])
async def test_unsigned_garbage_is_401_and_logs_no_traceback(
    slack: FakeSlack, runtime: RecordingRuntime, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {**signed_headers("not-the-secret", body), "Content-Type": "application/json"}
    async with serve(make_adapter(slack, runtime)) as client:
        response = await client.post("/t/acme/slack/events", data=body.encode(), headers=headers)
        assert response.status == 401
        long_timestamp = {**headers, "X-Slack-Request-Timestamp": "9" * 400}
        response = await client.post("/t/acme/slack/events", data=body.encode(), headers=long_timestamp)
        assert response.status == 401
    assert runtime.turns == []
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("body", GARBAGE, ids=["array", "null", "truncated", "deep", "string", "number"])
async def test_signed_but_malformed_json_is_400_and_logs_no_traceback(
    slack: FakeSlack, runtime: RecordingRuntime, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {**signed_headers(SECRET, body), "Content-Type": "application/json"}
    async with serve(make_adapter(slack, runtime)) as client:
        response = await client.post("/t/acme/slack/events", data=body.encode(), headers=headers)
        assert response.status == 400
    assert runtime.turns == []
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_body_that_is_not_utf8_is_401(slack: FakeSlack, runtime: RecordingRuntime) -> None:
    body = b"\xff\xfe{}"
    headers = signed_headers(SECRET, body)
    async with serve(make_adapter(slack, runtime)) as client:
        response = await client.post("/t/acme/slack/events", data=body, headers=headers)
        assert response.status == 401
