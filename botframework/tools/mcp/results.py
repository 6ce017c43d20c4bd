"""An MCP ``CallToolResult`` as what the model reads: text, plus images for vision models.

Text blocks and text resources become text; images (and image resources) are kept by the media
resolver under the channel-image caps and referenced from the stored message; audio, binary resources
and resource links become short notes. ``isError`` results stay errors the model can read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable

import mcp_types

from botframework.errors import MediaError
from botframework.media import MAX_IMAGE_BYTES
from botframework.messages import ImagePart
from botframework.tools.output import ToolOutput

__all__ = ["ImageKeeper", "to_output"]

log = logging.getLogger("botframework.mcp")

ImageKeeper = Callable[[bytes, str], ImagePart]
"""``(bytes, media type) -> part to store``; raises MediaError for an image that cannot be sent."""

_DECODE_IN_THREAD = 1 << 20
"""Base64 text longer than this is decoded off the event loop."""


async def to_output(result: mcp_types.CallToolResult, *, server: str, keep_image: ImageKeeper | None) -> ToolOutput:
    """What the model gets for ``result`` (``keep_image`` None: images become notes)."""
    texts: list[str] = []
    images: list[ImagePart] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            texts.append(block.text)
        elif isinstance(block, mcp_types.ImageContent):
            texts.extend(await _image(block.data, block.mime_type, server, keep_image, images))
        elif isinstance(block, mcp_types.AudioContent):
            texts.append(f"[audio omitted: {block.mime_type}, about {len(block.data) * 3 // 4:,} bytes]")
        elif isinstance(block, mcp_types.ResourceLink):
            texts.append(f"[resource {block.name}: {block.uri}]")
        elif isinstance(block, mcp_types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, mcp_types.TextResourceContents):
                texts.append(f"[resource {resource.uri}]\n{resource.text}")
            elif (resource.mime_type or "").startswith("image/"):
                texts.extend(await _image(resource.blob, resource.mime_type or "", server, keep_image, images))
            else:
                size = len(resource.blob) * 3 // 4
                texts.append(
                    f"[binary resource {resource.uri} omitted: {resource.mime_type or 'unknown type'}, "
                    f"about {size:,} bytes]"
                )
    if not result.content and result.structured_content is not None:
        texts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(texts)
    if result.is_error:
        text = text if text.lower().startswith("error") else f"error: {text or 'the tool reported a failure'}"
    elif not text and not images:
        text = "(the tool returned no content)"
    return ToolOutput(text=text, images=tuple(images), is_error=result.is_error)


async def _image(
    data: str, media_type: str, server: str, keep_image: ImageKeeper | None, images: list[ImagePart]
) -> list[str]:
    """Keep one image; returns the note for the text instead when it cannot be sent."""
    if keep_image is None:
        return [f"[image omitted: {media_type}]"]
    try:
        if len(data) * 3 // 4 > MAX_IMAGE_BYTES + 2:
            raise MediaError(f"the image is about {len(data) * 3 // 4:,} bytes (limit {MAX_IMAGE_BYTES:,})")
        raw = await asyncio.to_thread(_decode, data) if len(data) > _DECODE_IN_THREAD else _decode(data)
        images.append(keep_image(raw, media_type))
    except MediaError as exc:
        log.warning("an image from MCP server %r was not sent to the model: %s", server, exc)
        return [f"[image omitted: {exc}]"]
    return []


def _decode(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("the image is not valid base64") from None
