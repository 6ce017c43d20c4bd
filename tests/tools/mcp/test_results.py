"""An MCP tool result as what the model reads."""

from __future__ import annotations

import base64
import json

import mcp_types as mt
import pytest

from botframework.errors import MediaError
from botframework.media import MAX_IMAGE_BYTES, MediaResolver
from botframework.messages import ImagePart, Message
from botframework.tools.mcp.results import to_output
from tests.fakes.mcp_server import PNG_1X1

PNG_B64 = base64.b64encode(PNG_1X1).decode()


class Kept:
    def __init__(self) -> None:
        self.images: list[tuple[bytes, str]] = []

    def __call__(self, data: bytes, media_type: str) -> ImagePart:
        if not media_type.startswith("image/"):
            raise MediaError(f"{media_type!r} is not an image")
        self.images.append((data, media_type))
        return ImagePart(url=f"media:mcp:{len(self.images)}", media_type=media_type)


async def test_text_images_resources_and_audio_become_text_and_kept_images() -> None:
    kept = Kept()
    result = mt.CallToolResult(
        content=[
            mt.TextContent(text="Report:"),
            mt.ImageContent(data=PNG_B64, mime_type="image/png"),
            mt.AudioContent(data=base64.b64encode(b"\0" * 300).decode(), mime_type="audio/wav"),
            mt.ResourceLink(name="spec", uri="file:///spec.md"),
            mt.EmbeddedResource(resource=mt.TextResourceContents(uri="file:///a.txt", text="alpha")),
            mt.EmbeddedResource(
                resource=mt.BlobResourceContents(uri="file:///b.png", blob=PNG_B64, mime_type="image/png")
            ),
            mt.EmbeddedResource(
                resource=mt.BlobResourceContents(uri="file:///c.bin", blob="AAAA", mime_type="application/zip")
            ),
        ]
    )
    out = await to_output(result, server="s", keep_image=kept)
    assert out.text.split("\n") == [
        "Report:",
        "[audio omitted: audio/wav, about 300 bytes]",
        "[resource spec: file:///spec.md]",
        "[resource file:///a.txt]",
        "alpha",
        "[binary resource file:///c.bin omitted: application/zip, about 3 bytes]",
    ]
    assert kept.images == [(PNG_1X1, "image/png")] * 2
    assert [i.url for i in out.images] == ["media:mcp:1", "media:mcp:2"] and not out.is_error


async def test_structured_content_alone_is_sent_as_json() -> None:
    result = mt.CallToolResult(content=[], structured_content={"temp": 21, "unit": "C"})
    out = await to_output(result, server="s", keep_image=None)
    assert json.loads(out.text) == {"temp": 21, "unit": "C"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("disk full", "error: disk full"), ("Error executing tool x: boom", "Error executing tool x: boom"), ("", None)],
)
async def test_is_error_results_say_so(text: str, expected: str | None) -> None:
    content = [mt.TextContent(text=text)] if text else []
    out = await to_output(mt.CallToolResult(content=content, is_error=True), server="s", keep_image=None)
    assert out.is_error
    assert out.text == (expected or "error: the tool reported a failure")


async def test_images_that_cannot_be_sent_become_notes() -> None:
    kept = Kept()
    huge = base64.b64encode(b"\0" * (MAX_IMAGE_BYTES + 10)).decode()
    result = mt.CallToolResult(
        content=[
            mt.ImageContent(data=huge, mime_type="image/png"),
            mt.ImageContent(data="not base64!", mime_type="image/png"),
            mt.ImageContent(data=PNG_B64, mime_type="text/html"),
        ]
    )
    out = await to_output(result, server="s", keep_image=kept)
    lines = out.text.split("\n")
    assert lines[0].startswith("[image omitted: the image is about 10,485,7") and "(limit 10,485,760)" in lines[0]
    assert lines[1] == "[image omitted: the image is not valid base64]"
    assert lines[2] == "[image omitted: 'text/html' is not an image]"
    assert out.images == () and kept.images == []


async def test_an_empty_result_says_so() -> None:
    out = await to_output(mt.CallToolResult(content=[]), server="s", keep_image=None)
    assert out.text == "(the tool returned no content)"


async def test_kept_images_resolve_for_their_tenant_only() -> None:
    async def never(tenant: str, channel: str, ref: str) -> tuple[bytes, str]:
        raise AssertionError("kept images are never fetched")

    media = MediaResolver(fetch=never, kept_sources=("mcp",))
    part = media.keep("acme", "mcp", PNG_1X1, "image/png")
    message = Message(role="tool", content=(part,), tool_call_id="c1")
    [mine] = await media.resolve("acme", [message])
    [theirs] = await media.resolve("globex", [message])
    assert mine.images[0].url == f"data:image/png;base64,{PNG_B64}"
    assert theirs.images == () and theirs.text == "[image unavailable]"
