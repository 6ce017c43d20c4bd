"""Who a web user is: signed user links and resume tokens, both HMAC-SHA256, checked in constant time.

Two kinds of proof a channel can ask a client for, instead of trusting a name it sends:

- a **signed link** made by the operator's own site, which knows its users:
  ``user=U&expires=E&sig=S`` with ``S`` = lowercase hex HMAC-SHA256(key = a configured secret,
  message = ``"{tenant}\\n{user}\\n{expires}"``), valid until ``E`` (unix seconds).
  ``botframework sign-user`` prints one;
- a **resume token** the server issued itself to an anonymous visitor, so that visitor (and only
  whoever holds the token) is the same user next time. Its key is a deployment key kept in the
  database (:meth:`botframework.channel.ChannelRuntime.deployment_key`), not in process memory, so a
  token keeps working across restarts and across every process of a deployment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Protocol, runtime_checkable
from urllib.parse import urlencode

from pydantic import SecretStr

from botframework.errors import SignatureError

__all__ = [
    "ResumeTokens",
    "SignsUsers",
    "new_anonymous_user",
    "sign_user",
    "signed_user_query",
    "verify_signed_user",
]


@runtime_checkable
class SignsUsers(Protocol):
    """A channel config whose users arrive with signed links (``botframework sign-user`` finds it)."""

    def user_signing_secret(self) -> SecretStr | None:
        """The HMAC key of signed links, or None when this channel does not use them."""


def sign_user(secret: str, *, tenant: str, user: str, expires: int) -> str:
    """The ``sig`` of a signed link."""
    message = f"{tenant}\n{user}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_user_query(secret: str, *, tenant: str, user: str, ttl_s: int, now: float | None = None) -> str:
    """``user=...&expires=...&sig=...`` for a link valid ``ttl_s`` seconds from ``now``."""
    expires = int(time.time() if now is None else now) + ttl_s
    return urlencode(
        {"user": user, "expires": expires, "sig": sign_user(secret, tenant=tenant, user=user, expires=expires)}
    )


def verify_signed_user(
    secret: str, *, tenant: str, user: str, expires: str, sig: str, now: float | None = None
) -> None:
    """Raise SignatureError (saying why) unless ``sig`` signs ``user`` until ``expires``, not yet past."""
    if not (user and expires and sig):
        raise SignatureError("a signed link needs user, expires and sig")
    if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
        raise SignatureError(f"expires must be unix seconds, got {expires[:20]!r}")
    expected = sign_user(secret, tenant=tenant, user=user, expires=int(expires))
    if not hmac.compare_digest(expected.encode(), sig.strip().lower().encode("utf-8", "replace")):
        raise SignatureError("the link's signature does not match")
    if int(expires) < (time.time() if now is None else now):
        raise SignatureError(f"the link expired at {expires}")


def new_anonymous_user() -> str:
    """A fresh, unguessable user id for an anonymous visitor."""
    return f"web-{secrets.token_hex(12)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ResumeTokens:
    """Issues and checks resume tokens: ``v1.<user>.<expires>.<mac>`` (base64url parts)."""

    PREFIX = "v1"

    def __init__(self, *, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a resume key needs at least 16 bytes")
        self._key = key

    def _mac(self, tenant: str, user: str, expires: int) -> bytes:
        message = f"resume\n{tenant}\n{user}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def issue(self, *, tenant: str, user: str, ttl_s: int, now: float | None = None) -> str:
        expires = int(time.time() if now is None else now) + ttl_s
        return ".".join((self.PREFIX, _b64(user.encode()), str(expires), _b64(self._mac(tenant, user, expires))))

    def user_of(self, token: str, *, tenant: str, now: float | None = None) -> str | None:
        """The user a token was issued to for ``tenant``, or None (malformed, forged or expired)."""
        parts = token.split(".")
        if (
            len(parts) != 4
            or parts[0] != self.PREFIX
            or not (parts[2].isascii() and parts[2].isdigit() and len(parts[2]) <= 12)
        ):
            return None
        try:
            user = _unb64(parts[1]).decode("utf-8")
            mac = _unb64(parts[3])
        except (binascii.Error, ValueError):
            return None
        expires = int(parts[2])
        if not hmac.compare_digest(mac, self._mac(tenant, user, expires)):
            return None
        if expires < (time.time() if now is None else now):
            return None
        return user
