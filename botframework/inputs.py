"""Untrusted input made safe to store, log and send back: text repair, identifiers, JSON bodies.

Everything a client can send reaches here before it is stored or parsed further:

- :func:`clean_text` repairs what cannot be encoded as UTF-8 (lone UTF-16 surrogates, which JSON
  ``"\\ud83d"`` escapes produce) with U+FFFD. Stored text is then always encodable, so a history
  replay or a transcript can never fail on it.
- :func:`check_identifier` refuses control characters in ids and user names: they are used in
  dedupe keys, logs and URLs, where an invisible separator could make two different values equal.
- :func:`load_json_object` parses a body into a JSON object or raises PayloadError: invalid UTF-8,
  malformed JSON and nesting deep enough to exhaust the parser's recursion are all a clear 4xx,
  never an exception that escapes a handler.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from botframework.errors import PayloadError

__all__ = ["MAX_JSON_DEPTH", "check_identifier", "clean_text", "has_control_chars", "load_json_object"]

MAX_JSON_DEPTH = 64
"""Deepest nesting accepted in a client's JSON; genuine vendor payloads stay under 10."""

_SURROGATES = re.compile("[\ud800-\udfff]")
_DEPTH_CHARS = re.compile(rb'[\[\]{}"\\]')


def clean_text(text: str) -> str:
    """``text`` with every code point UTF-8 cannot encode (lone surrogates) replaced by U+FFFD."""
    if text.isascii():
        return text
    return _SURROGATES.sub("\ufffd", text)


def has_control_chars(value: str) -> bool:
    """Whether ``value`` holds a control, format-less separator or surrogate character (category C*)."""
    return any(unicodedata.category(ch)[0] == "C" for ch in value)


def check_identifier(value: str, *, what: str, max_chars: int) -> str:
    """``value`` if it is 1..max_chars characters without control characters; PayloadError otherwise."""
    if not value or len(value) > max_chars:
        raise PayloadError(f"{what} must be 1-{max_chars} characters, got {len(value)}")
    if has_control_chars(value):
        raise PayloadError(f"{what} must not contain control characters, got {value!r}")
    if value != value.strip():
        raise PayloadError(f"{what} must not start or end with whitespace, got {value!r}")
    return value


def _nesting(raw: bytes, limit: int) -> int:
    """How deep the arrays/objects of a JSON text nest (strings skipped), counted up to ``limit + 1``."""
    depth = deepest = 0
    in_string = escaped = False
    for match in _DEPTH_CHARS.finditer(raw):
        ch = match.group()
        if in_string:
            if escaped:
                escaped = False
            elif ch == b"\\":
                # an escaped quote or backslash is the very next match: skip it
                escaped = raw[match.end() : match.end() + 1] in (b'"', b"\\")
            elif ch == b'"':
                in_string = False
            continue
        if ch == b'"':
            in_string = True
        elif ch in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif ch in (b"]", b"}"):
            depth -= 1
    return deepest


def load_json_object(raw: bytes | str, *, what: str, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The JSON object in ``raw``; PayloadError (naming ``what``) for anything else."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if _nesting(data, max_depth) > max_depth:
        raise PayloadError(f"{what} nests deeper than {max_depth} levels")
    try:
        value = json.loads(data)
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{what} is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{what} is not JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise PayloadError(f"{what} nests too deeply") from None
    if not isinstance(value, dict):
        raise PayloadError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value
