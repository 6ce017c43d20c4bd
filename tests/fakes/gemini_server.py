"""A fake Gemini API (Google AI): ``POST /v1beta/models/<model>:generateContent`` and
``:streamGenerateContent?alt=sse``, driven by the ``google-genai`` SDK.

Checks what the real API checks, in its error shape ``{"error": {"code", "message", "status",
"details"}}``:

- the API key in ``x-goog-api-key`` (a wrong one is Google's 400 ``INVALID_ARGUMENT`` with the
  ``API_KEY_INVALID`` reason, as the real API answers);
- ``contents``: non-empty, roles ``user``/``model``, every part exactly one kind; a model turn with
  ``functionCall`` parts must be followed by a user turn answering each of them by name with
  ``functionResponse`` parts; function names valid; ``generationConfig.maxOutputTokens`` positive.

Streams are SSE ``data:`` lines, each a ``GenerateContentResponse`` chunk; the last carries
``finishReason`` and ``usageMetadata``. Function calls arrive whole (with a ``thoughtSignature``).
With ``context_window``, an oversized prompt gets "The input token count (N) exceeds the maximum
number of tokens allowed (M)." Helpers: :func:`gemini_error`, :func:`resource_exhausted`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from botframework.models.tokens import encoding
from tests.fakes import (
    Disconnect,
    Fail,
    FakeModelServer,
    Hang,
    RecordedRequest,
    Reply,
    Step,
    StreamError,
    Truncated,
    split_text,
)

__all__ = ["FakeGeminiServer", "count_prompt_tokens", "gemini_error", "gemini_protocol_problems", "resource_exhausted"]

_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<op>generateContent|streamGenerateContent)$")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]{0,63}$")
_PART_KINDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
_CODES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS10aG91Z2h0"


def gemini_error(status: int, message: str, *, details: list[dict[str, Any]] | None = None) -> Fail:
    return Fail(
        status=status,
        body={
            "error": {
                "code": status,
                "message": message,
                "status": _CODES.get(status, "UNKNOWN"),
                "details": details or [],
            }
        },
    )


def resource_exhausted(retry_after: float = 1) -> Fail:
    """Google's 429: the wait is in a ``google.rpc.RetryInfo`` detail, not in a header."""
    return gemini_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}],
    )


def _part_text(part: dict[str, Any]) -> str:
    if "text" in part:
        return str(part["text"])
    if "functionCall" in part:
        return json.dumps(part["functionCall"])
    if "functionResponse" in part:
        return json.dumps(part["functionResponse"])
    return ""


def count_prompt_tokens(body: dict[str, Any]) -> int:
    enc = encoding()
    texts = [_part_text(p) for c in body.get("contents", []) for p in c.get("parts", [])]
    texts += [_part_text(p) for p in (body.get("systemInstruction") or {}).get("parts", [])]
    total = sum(len(enc.encode(t, disallowed_special=())) for t in texts) + 3 * len(body.get("contents", []))
    if body.get("tools"):
        total += len(enc.encode(json.dumps(body["tools"]), disallowed_special=()))
    return total


def gemini_protocol_problems(body: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return ["contents: must not be empty"]
    for i, tool in enumerate(body.get("tools") or ()):
        for j, fn in enumerate(tool.get("functionDeclarations") or ()):
            if not _NAME.match(str(fn.get("name", ""))):
                problems.append(f"tools[{i}].function_declarations[{j}].name: invalid {fn.get('name')!r}")
    max_tokens = (body.get("generationConfig") or {}).get("maxOutputTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        problems.append(f"generation_config.max_output_tokens: must be positive, got {max_tokens!r}")
    pending: list[str] = []
    for i, content in enumerate(contents):
        role = content.get("role")
        parts = content.get("parts")
        if role not in ("user", "model"):
            problems.append(f"contents[{i}].role: must be 'user' or 'model', got {role!r}")
        if not isinstance(parts, list) or not parts:
            problems.append(f"contents[{i}].parts: must not be empty")
            continue
        for j, part in enumerate(parts):
            kinds = [k for k in _PART_KINDS if k in part]
            if len(kinds) != 1:
                problems.append(f"contents[{i}].parts[{j}]: exactly one of {', '.join(_PART_KINDS)} (got {kinds})")
        answered = [p["functionResponse"].get("name") for p in parts if "functionResponse" in p]
        if pending:
            if role != "user" or sorted(answered) != sorted(pending):
                problems.append(
                    f"contents[{i}]: Please ensure that function response turn comes immediately after a function "
                    f"call turn, answering each call (expected {pending}, got {answered})"
                )
        elif answered:
            problems.append(f"contents[{i}]: function responses {answered} without a preceding function call turn")
        pending = [p["functionCall"].get("name") for p in parts if "functionCall" in p] if role == "model" else []
        for p in parts:
            if "functionCall" in p and not isinstance(p["functionCall"].get("args", {}), dict):
                problems.append(f"contents[{i}]: functionCall.args must be an object")
    if pending:
        problems.append("contents: the last function call turn is not answered")
    return problems


class FakeGeminiServer(FakeModelServer):
    def __init__(self, *, api_key: str = "gemini-test-key", **kw: Any) -> None:
        super().__init__(**kw)
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
        return recorded.path.endswith(":streamGenerateContent")

    def auth_problem(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-goog-api-key") == self.api_key:
            return None
        return self.fail_response(
            gemini_error(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                    }
                ],
            )
        )

    def protocol_problems(self, body: dict[str, Any]) -> list[str]:
        return gemini_protocol_problems(body)

    def invalid_request_body(self, message: str) -> dict[str, Any]:
        return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}

    def not_found_body(self, path: str) -> dict[str, Any]:
        return {"error": {"code": 404, "message": f"models/{path} is not found", "status": "NOT_FOUND"}}

    def overflow_response(self, body: dict[str, Any]) -> web.Response | None:
        assert self.context_window is not None
        prompt = count_prompt_tokens(body)
        if prompt + int((body.get("generationConfig") or {}).get("maxOutputTokens") or 0) <= self.context_window:
            return None
        return self.fail_response(
            gemini_error(
                400,
                f"The input token count ({prompt}) exceeds the maximum number of tokens allowed "
                f"({self.context_window}).",
            )
        )

    # -- rendering -------------------------------------------------------------------------
    def _usage(self, recorded: RecordedRequest, step: Reply) -> dict[str, Any]:
        prompt = step.input_tokens if step.input_tokens is not None else count_prompt_tokens(recorded.body)
        if step.output_tokens is not None:
            output = step.output_tokens
        else:
            out = step.text + "".join(c.name + c.arguments for c in step.tool_calls)
            output = len(encoding().encode(out, disallowed_special=()))
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output}
        if step.cached_tokens:
            usage["cachedContentTokenCount"] = step.cached_tokens
        return usage

    def _chunk(self, parts: list[dict[str, Any]], *, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish is not None:
            candidate["finishReason"] = finish
        out: dict[str, Any] = {"candidates": [candidate], "modelVersion": self.model, "responseId": "resp-fake"}
        if usage is not None:
            out["usageMetadata"] = usage
        return out

    @staticmethod
    def _calls(step: Reply) -> list[dict[str, Any]]:
        parts = []
        for i, call in enumerate(step.tool_calls):
            try:
                args = json.loads(call.arguments)
            except ValueError:
                args = {}
            part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
            if i == 0:
                part["thoughtSignature"] = SIGNATURE
            parts.append(part)
        return parts

    async def _data(self, response: web.StreamResponse, data: dict[str, Any]) -> None:
        await response.write(f"data: {json.dumps(data)}\r\n\r\n".encode())

    async def render(self, request: web.Request, recorded: RecordedRequest, step: Step) -> web.StreamResponse:
        finish = (step.finish_reason or "STOP") if isinstance(step, Reply) else None
        if not self.is_stream(recorded):
            assert isinstance(step, Reply), f"{type(step).__name__} needs a streaming request"
            parts = ([{"text": step.text}] if step.text else []) + self._calls(step)
            return web.json_response(self._chunk(parts, finish=finish, usage=self._usage(recorded, step)))
        response = await self.start_sse(request)
        if isinstance(step, Reply):
            pieces = split_text(step.text, step.chunks)
            for piece in pieces[:-1]:
                await self._data(response, self._chunk([{"text": piece}]))
                if step.chunk_delay_s:
                    await self.hang(step.chunk_delay_s)
            last = ([{"text": pieces[-1]}] if pieces else []) + self._calls(step)
            usage = self._usage(recorded, step) if step.usage else None
            await self._data(response, self._chunk(last or [{"text": ""}], finish=finish, usage=usage))
        elif isinstance(step, Truncated):
            for piece in split_text(step.text, step.chunks):
                await self._data(response, self._chunk([{"text": piece}]))
        elif isinstance(step, Disconnect | Hang | StreamError):
            for piece in split_text(step.text, max(step.after_chunks, 1))[: step.after_chunks]:
                await self._data(response, self._chunk([{"text": piece}]))
            if isinstance(step, StreamError):
                await self._data(response, {"error": {"code": 503, "message": step.message, "status": "UNAVAILABLE"}})
            else:
                if isinstance(step, Hang):
                    await self.hang(step.seconds)
                self.drop(request)
                return response
        await response.write_eof()
        return response
