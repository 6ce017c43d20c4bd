"""Channel images in model requests: pictures a vendor only serves with the bot's credentials.

Slack's ``url_private`` and Feishu's message resources cannot be fetched by a model provider. The
adapter that receives one stores a *reference*, ``ImagePart(url=media_ref(channel, ref))``
(``media:<channel>:<ref>``), never the bytes: the message table stays small and a turn's work stays
bounded by the window. Before each model call the invocation service resolves references into
``data:`` URLs through the adapter that made them (:meth:`ChannelAdapter.fetch_media`), with a
bounded in-memory cache so the rounds of a tool loop and the next turns do not download the same
picture again. A failure never fails the turn: that image becomes a short text note for the model.

Image URLs are user input too (a WeChat ``PicUrl``, a Discord attachment): passed on, a self-hosted
model server would fetch them from inside the operator's network. Only an ``https`` URL on a host a
channel declares as its public image CDN (:attr:`ChannelAdapter.image_hosts`) is passed to the model
as-is; any other URL is fetched here through :class:`~botframework.netguard.GuardedFetcher` (public
addresses only, redirects rechecked, size cap) and sent as ``data:``, or becomes the note.

Images that no one can fetch again (a tool's output, e.g. from an MCP server) are *kept*
(:meth:`MediaResolver.keep`): the stored message gets a reference, the bytes live only in the same
cache under the same caps, and once evicted (or after a restart) the model gets the note instead.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from urllib.parse import urlsplit

from botframework.errors import MediaError
from botframework.messages import ContentPart, ImagePart, Message, TextPart
from botframework.netguard import GuardedFetcher

__all__ = ["MAX_IMAGE_BYTES", "MediaFetch", "MediaResolver", "host_matches", "media_ref", "parse_media_ref"]

log = logging.getLogger(__name__)

MEDIA_SCHEME = "media:"
MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""Larger images are not sent (providers cap inline images at about 20 MB, base64 adds a third)."""

MediaFetch = Callable[[str, str, str], Awaitable[tuple[bytes, str]]]
"""``(tenant, channel, ref) -> (bytes, media type)``; raises MediaError."""


def media_ref(channel: str, ref: str) -> str:
    """The URL an adapter stores for an image only it can fetch."""
    return f"{MEDIA_SCHEME}{channel}:{ref}"


def parse_media_ref(url: str) -> tuple[str, str] | None:
    """``(channel, ref)`` of a media reference; None for ordinary ``https:``/``data:`` URLs."""
    if not url.startswith(MEDIA_SCHEME):
        return None
    channel, sep, ref = url[len(MEDIA_SCHEME) :].partition(":")
    return (channel, ref) if sep and channel and ref else None


def host_matches(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` is one of ``patterns`` (``cdn.example.com``, or ``*.example.com`` for subdomains)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("*.") and host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
            return True
        if host == pattern:
            return True
    return False


class MediaResolver:
    """Turns media references and untrusted image URLs into ``data:`` URLs; one per process."""

    def __init__(
        self,
        *,
        fetch: MediaFetch,
        trusted_hosts: Sequence[str] = (),
        fetcher: GuardedFetcher | None = None,
        max_cache_bytes: int = 64 * 1024 * 1024,
        kept_sources: Iterable[str] = (),
    ) -> None:
        """``trusted_hosts``: image CDNs whose https URLs go to the model as-is; ``fetcher`` gets the rest.
        ``kept_sources``: reference sources whose images are only ever :meth:`keep`-ed (never fetched)."""
        self._fetch = fetch
        self.trusted_hosts = tuple(trusted_hosts)
        self.fetcher = fetcher or GuardedFetcher(max_bytes=MAX_IMAGE_BYTES)
        self._max_cache_bytes = max_cache_bytes
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._cached_bytes = 0
        self._kept_sources: set[str] = set(kept_sources)

    def keep(self, tenant: str, source: str, data: bytes, media_type: str) -> ImagePart:
        """Hold ``data`` for ``tenant``'s next model calls; returns the part to store in its place.

        Raises MediaError for what a model would not be sent (not an image, over MAX_IMAGE_BYTES).
        """
        if len(data) > MAX_IMAGE_BYTES:
            raise MediaError(f"an image from {source} is {len(data):,} bytes (limit {MAX_IMAGE_BYTES:,})")
        if not media_type.startswith("image/"):
            raise MediaError(f"{source} returned {media_type!r}, not an image")
        url = media_ref(source, uuid.uuid4().hex)
        self._kept_sources.add(source)
        self._remember((tenant, url), f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}")
        return ImagePart(url=url, media_type=media_type)

    async def resolve(self, tenant: str, messages: Sequence[Message]) -> list[Message]:
        """``messages`` with every media reference replaced (unchanged messages are the same objects)."""
        out: list[Message] = []
        for message in messages:
            if not any(isinstance(p, ImagePart) and self._needs_work(p.url) for p in message.content):
                out.append(message)
                continue
            parts: list[ContentPart] = []
            for part in message.content:
                parts.append(await self._part(tenant, part) if isinstance(part, ImagePart) else part)
            out.append(replace(message, content=tuple(parts)))
        return out

    def _passes(self, url: str) -> bool:
        """A URL the model may see as it is: inline data, or https on a channel's image CDN."""
        if url.startswith("data:"):
            return True
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        return (
            parts.scheme == "https"
            and port in (None, 443)
            and not parts.username
            and bool(parts.hostname)
            and host_matches(parts.hostname or "", self.trusted_hosts)
        )

    def _needs_work(self, url: str) -> bool:
        return parse_media_ref(url) is not None or not self._passes(url)

    async def _part(self, tenant: str, part: ImagePart) -> ContentPart:
        parsed = parse_media_ref(part.url)
        if parsed is None and self._passes(part.url):
            return part
        key = (tenant, part.url)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return replace(part, url=cached)
        try:
            if parsed is None:
                channel, ref = "url", part.url
                data, media_type = await self.fetcher.fetch(part.url)
            else:
                channel, ref = parsed
                if channel in self._kept_sources:
                    raise MediaError(f"an image from {channel} ({ref}) is no longer held in memory")
                data, media_type = await self._fetch(tenant, channel, ref)
            if len(data) > MAX_IMAGE_BYTES:
                raise MediaError(f"{channel} image {ref!r} is {len(data):,} bytes (limit {MAX_IMAGE_BYTES:,})")
            if not media_type.startswith("image/"):
                raise MediaError(f"{channel} image {ref!r} came back as {media_type!r}, not an image")
        except MediaError as exc:
            log.warning("image not sent to the model: %s", exc)
            return TextPart("[image unavailable]")
        url = f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
        self._remember(key, url)
        return ImagePart(url=url, media_type=media_type, detail=part.detail)

    def _remember(self, key: tuple[str, str], url: str) -> None:
        if len(url) > self._max_cache_bytes:
            return
        self._cache[key] = url
        self._cached_bytes += len(url)
        while self._cached_bytes > self._max_cache_bytes:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= len(old)
