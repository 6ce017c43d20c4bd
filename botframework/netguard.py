"""A fetcher for URLs that came from users: public addresses only, every redirect rechecked, size-capped.

An image URL in a chat message is chosen by whoever sent the message. Fetching it naively (or
letting a self-hosted model server fetch it) reaches whatever that URL points to from inside the
operator's network: cloud metadata at ``169.254.169.254``, admin ports on ``127.0.0.1``, private
services. :class:`GuardedFetcher` refuses that:

- only ``http``/``https`` on the default ports;
- every address the host resolves to must be public (not private, loopback, link-local, shared,
  multicast or reserved), checked in the resolver aiohttp connects through, so the address checked
  is the address connected to (no DNS rebinding between check and use); IP literals are checked
  before any connection;
- redirects are followed by hand, at most a few, each new URL checked like the first;
- the body is read up to a cap, and must be declared as an image.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from botframework.errors import MediaError

__all__ = ["GuardedFetcher", "is_public_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and refuses a host if any of its addresses is not allowed."""

    def __init__(self, inner: AbstractResolver, allowed: Callable[[IPAddress], bool]) -> None:
        self._inner = inner
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not self._allowed(ipaddress.ip_address(result["host"])):
                raise OSError(f"{host} resolves to {result['host']}, which is not a public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


class GuardedFetcher:
    """Fetches user-supplied image URLs safely; every failure is a MediaError saying why."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float = 15.0,
        max_redirects: int = 3,
        ports: frozenset[int] = frozenset({80, 443}),
        allowed: Callable[[IPAddress], bool] = is_public_address,
        resolver: Callable[[], AbstractResolver] = DefaultResolver,
    ) -> None:
        """``allowed``, ``ports`` and ``resolver`` exist for tests, which serve on loopback."""
        self.max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_redirects = max_redirects
        self._ports = ports
        self._allowed = allowed
        self._resolver = resolver

    def check_url(self, url: str) -> None:
        """MediaError unless ``url`` is http(s) on an allowed port, and a literal IP host is allowed."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise MediaError(f"unusable image URL {url[:200]!r}: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MediaError(f"image URL {url[:200]!r} is not http(s)")
        if parts.username or parts.password:
            raise MediaError(f"image URL {url[:200]!r} carries credentials")
        if port not in self._ports:
            raise MediaError(f"image URL {url[:200]!r} uses port {port}; only {sorted(self._ports)} are fetched")
        try:
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return
        if not self._allowed(literal):
            raise MediaError(f"image URL {url[:200]!r} points at {literal}, which is not a public address")

    async def fetch(self, url: str) -> tuple[bytes, str]:
        """The bytes and media type of the image at ``url``."""
        connector = aiohttp.TCPConnector(
            resolver=_GuardedResolver(self._resolver(), self._allowed), use_dns_cache=False
        )
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=self._timeout) as session:
                for _ in range(self._max_redirects + 1):
                    self.check_url(url)
                    async with session.get(url, allow_redirects=False) as response:
                        if response.status in _REDIRECTS and "Location" in response.headers:
                            url = urljoin(url, response.headers["Location"])
                            continue
                        return await self._body(url, response)
                raise MediaError(f"image URL redirected more than {self._max_redirects} times")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise MediaError(f"image {url[:200]!r} could not be fetched: {type(exc).__name__}: {exc}") from exc

    async def _body(self, url: str, response: Any) -> tuple[bytes, str]:
        if response.status != 200:
            raise MediaError(f"image {url[:200]!r} answered HTTP {response.status}")
        media_type = str(response.content_type or "")
        if not media_type.startswith("image/"):
            raise MediaError(f"image {url[:200]!r} is {media_type or 'untyped'}, not an image")
        declared = response.content_length
        if declared is not None and declared > self.max_bytes:
            raise MediaError(f"image {url[:200]!r} is {declared:,} bytes (limit {self.max_bytes:,})")
        data = bytearray()
        while chunk := await response.content.read(65_536):
            data += chunk
            if len(data) > self.max_bytes:
                raise MediaError(f"image {url[:200]!r} is larger than {self.max_bytes:,} bytes")
        return bytes(data), media_type
