"""A fake Amazon Bedrock runtime for Anthropic models: ``POST /model/<id>/invoke`` and
``/model/<id>/invoke-with-response-stream``.

The Messages protocol is the Anthropic fake's (same steps, validation and token counting); what
Bedrock adds is checked and rendered as Bedrock does:

- SigV4: every request must carry ``Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<date>/
  <region>/bedrock/aws4_request, SignedHeaders=..., Signature=...`` and ``X-Amz-Date``; the fake
  recomputes the signature with botocore from the raw request and the expected secret, so a
  missing, stale or wrong signature is refused (403, ``x-amzn-ErrorType`` like the real service).
  A Bedrock API key (``Authorization: Bearer``) is accepted instead when ``api_key`` is set.
- The body has no ``model`` or ``stream`` (they are in the path) and needs ``anthropic_version:
  bedrock-2023-05-31``.
- Streams are AWS event streams (``application/vnd.amazon.eventstream``): each Anthropic event is
  a ``chunk`` frame whose payload is ``{"bytes": base64(event JSON)}``; an error mid-stream is an
  ``exception`` frame (e.g. ``throttlingException``).
- Errors are ``{"message": ...}`` with the exception name in ``x-amzn-ErrorType``:
  :func:`bedrock_error`, :func:`throttled`; an oversized prompt gets the ValidationException that
  carries Anthropic's "prompt is too long: N tokens > M maximum".
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes import Fail, RecordedRequest
from tests.fakes.anthropic_server import FakeAnthropicServer, anthropic_protocol_problems, count_prompt_tokens

__all__ = ["BEDROCK_VERSION", "FakeBedrockServer", "bedrock_error", "eventstream_frame", "throttled"]

BEDROCK_VERSION = "bedrock-2023-05-31"
_PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream)$")
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def bedrock_error(status: int, error_type: str, message: str, *, headers: dict[str, str] | None = None) -> Fail:
    return Fail(
        status=status,
        body={"message": message},
        headers={
            "x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            **(headers or {}),
        },
    )


def throttled(retry_after: float = 1) -> Fail:
    return bedrock_error(
        429,
        "ThrottlingException",
        "Too many requests, please wait before trying again.",
        headers={"retry-after": f"{retry_after:g}"},
    )


def eventstream_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One message of the AWS event stream encoding (string headers only)."""
    encoded = b""
    for name, value in headers.items():
        n, v = name.encode(), value.encode()
        encoded += bytes([len(n)]) + n + b"\x07" + len(v).to_bytes(2, "big") + v
    total = 12 + len(encoded) + len(payload) + 4
    prelude = total.to_bytes(4, "big") + len(encoded).to_bytes(4, "big")
    message = prelude + zlib.crc32(prelude).to_bytes(4, "big") + encoded + payload
    return message + zlib.crc32(message).to_bytes(4, "big")


class FakeBedrockServer(FakeAnthropicServer):
    def __init__(
        self,
        *,
        region: str = "us-east-1",
        access_key: str = "AKIDFAKEBEDROCK",
        secret_key: str = "fake-secret",
        api_key: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.api_key = api_key

    @property
    def base_url(self) -> str:
        return self.origin

    def route_matches(self, request: web.Request) -> bool:
        m = _PATH.match(request.path)
        if m is None:
            return False
        self.model = m["model"]
        return True

    def is_stream(self, recorded: RecordedRequest) -> bool:
        return recorded.path.endswith("/invoke-with-response-stream")

    def _refuse(self, error_type: str, message: str, status: int = 403) -> web.Response:
        fail = bedrock_error(status, error_type, message)
        return self.fail_response(fail)

    def auth_problem(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if self.api_key is not None and header == f"Bearer {self.api_key}":
            return None
        m = _AUTH.match(header)
        if m is None or "X-Amz-Date" not in request.headers:
            return self._refuse("MissingAuthenticationTokenException", "Missing Authentication Token")
        if m["key"] != self.access_key:
            return self._refuse("UnrecognizedClientException", "The security token included in the request is invalid.")
        if m["region"] != self.region or m["service"] != "bedrock":
            return self._refuse(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region ({self.region}) and to the service bedrock.",
            )
        return None

    async def _signature_problem(self, request: web.Request, raw: bytes) -> str | None:
        m = _AUTH.match(request.headers.get("Authorization", ""))
        if m is None:
            return None  # a Bedrock API key
        signed = m["signed"].split(";")
        aws = AWSRequest(
            method=request.method,
            url=f"{request.scheme}://{request.host}{request.raw_path}",
            data=raw,
            headers={name: request.headers[name] for name in signed if name in request.headers},
        )
        aws.context["timestamp"] = request.headers["X-Amz-Date"]
        auth = SigV4Auth(Credentials(self.access_key, self.secret_key), "bedrock", self.region)
        expected = auth.signature(auth.string_to_sign(aws, auth.canonical_request(aws)), aws)
        if expected != m["signature"]:
            return "The request signature we calculated does not match the signature you provided."
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if _PATH.match(request.path) and self.auth_problem(request) is None:
            problem = await self._signature_problem(request, raw)
            if problem is not None:
                self.auth_errors.append(problem)
                return self._refuse("InvalidSignatureException", problem)
        return await super()._handle(request)

    def protocol_problems(self, body: dict[str, Any]) -> list[str]:
        problems = [f"{key}: not allowed in the body (it is in the path)" for key in ("model", "stream") if key in body]
        if body.get("anthropic_version") != BEDROCK_VERSION:
            problems.append(f"anthropic_version: must be {BEDROCK_VERSION!r}, got {body.get('anthropic_version')!r}")
        rest = {k: v for k, v in body.items() if k != "anthropic_version"}
        return problems + anthropic_protocol_problems({**rest, "model": self.model})

    def invalid_request_body(self, message: str) -> dict[str, Any]:
        return {"message": message}

    def not_found_body(self, path: str) -> dict[str, Any]:
        return {"message": f"Unknown operation {path}"}

    def overflow_response(self, body: dict[str, Any]) -> web.Response | None:
        assert self.context_window is not None
        prompt = count_prompt_tokens(body)
        if prompt + int(body.get("max_tokens") or 0) <= self.context_window:
            return None
        return self.fail_response(
            bedrock_error(
                400,
                "ValidationException",
                f"The model returned the following errors: prompt is too long: {prompt} tokens > "
                f"{self.context_window} maximum",
            )
        )

    async def start_sse(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/vnd.amazon.eventstream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        return response

    async def sse(self, response: web.StreamResponse, data: str, *, event: str | None = None) -> None:  # type: ignore[override]
        if event == "error":
            error = json.loads(data)["error"]
            kind = {"overloaded_error": "serviceUnavailableException"}.get(error["type"], error["type"])
            frame = eventstream_frame(
                {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                json.dumps({"message": error["message"]}).encode(),
            )
        else:
            payload = json.dumps({"bytes": base64.b64encode(data.encode()).decode()}).encode()
            frame = eventstream_frame(
                {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload
            )
        await response.write(frame)
