"""A fake Azure OpenAI resource: ``POST /openai/deployments/<deployment>/chat/completions``.

The Chat Completions protocol is the OpenAI fake's (same steps, same validation, same overflow
answer); on top of it the checks an Azure resource makes, in its error shapes:

- ``api-version`` is a required query parameter (400 ``MissingApiVersionParameter``);
- credentials: ``api-key: <api_key>`` or ``Authorization: Bearer <token>`` (401 otherwise);
- an unknown deployment is 404 ``DeploymentNotFound``.

Streams start with Azure's chunk that has no choices, only ``prompt_filter_results``.
``base_url`` is the resource endpoint (what ``AsyncAzureOpenAI(azure_endpoint=...)`` takes).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.openai_server import FakeOpenAIServer, openai_error

__all__ = ["FakeAzureServer", "azure_rate_limited"]


def azure_rate_limited(retry_after: float = 1) -> Any:
    """Azure's 429 for a deployment over its tokens-per-minute quota."""
    return openai_error(
        429,
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have "
        f"exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after {retry_after:g} "
        "seconds.",
        type="rate_limit",
        code="429",
        headers={"retry-after": f"{retry_after:g}", "retry-after-ms": f"{retry_after * 1000:g}"},
    )


class FakeAzureServer(FakeOpenAIServer):
    def __init__(
        self, *, deployment: str = "chat-prod", api_key: str = "az-test-key", token: str = "entra-token", **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.deployment = deployment
        self.api_key = api_key
        self.token = token

    @property
    def base_url(self) -> str:
        return self.origin

    def route_matches(self, request: web.Request) -> bool:
        return request.path == f"/openai/deployments/{self.deployment}/chat/completions"

    def not_found_body(self, path: str) -> dict[str, Any]:
        return {
            "error": {
                "code": "DeploymentNotFound",
                "message": "The API deployment for this resource does not exist. If you created the deployment "
                "within the last 5 minutes, please wait a moment and try again.",
            }
        }

    def auth_problem(self, request: web.Request) -> web.Response | None:
        if not request.query.get("api-version"):
            body = {
                "error": {
                    "code": "MissingApiVersionParameter",
                    "message": "The api-version query parameter (?api-version=) is required for all requests.",
                }
            }
            return web.json_response(body, status=400)
        key = request.headers.get("api-key")
        bearer = request.headers.get("Authorization", "")
        if key == self.api_key or bearer == f"Bearer {self.token}":
            return None
        body = {
            "error": {
                "code": "401",
                "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                "provide a valid key for an active subscription and use a correct regional API endpoint for "
                "your resource.",
            }
        }
        return web.json_response(body, status=401)

    async def start_sse(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        response = await super().start_sse(request)
        prompt_filter = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [
                {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}
            ],
        }
        await self.sse(response, json.dumps(prompt_filter))
        return response
