"""Fence-aware splitting of a long reply into chunks that each fit a channel's limit.

Every chunk is within ``limit`` measured in characters (code points) or UTF-8 bytes. Cuts prefer a
paragraph boundary, then a line, then a word, and only then any character (never inside a code
point, so never inside a UTF-8 sequence). A fenced code block cut in two is closed at the end of one
chunk and reopened, with the same fence line and info string, at the start of the next, so every
chunk renders on its own. Fences are found with markdown-it-py (the same parser the dialect
renderers use), so indented, tilde, longer-backtick and blockquoted fences are all recognised.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

from markdown_it import MarkdownIt

__all__ = ["Unit", "measure", "split", "split_rendered"]

Unit = Literal["chars", "bytes"]

_PARSER = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_MAX_CHAR = {"chars": 1, "bytes": 4}


def measure(text: str, unit: Unit = "chars") -> int:
    """Length of ``text`` in ``unit``."""
    return len(text) if unit == "chars" else len(text.encode("utf-8"))


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass(frozen=True, slots=True)
class _Fence:
    open_start: int  # offset of the opening fence line
    body_start: int  # offset just after the opening line's newline
    body_end: int  # offset of the closing line (len(text) when the fence is never closed)
    end: int  # offset just after the closing line
    opener: str  # line that reopens the fence in the next chunk
    closer: str  # line that closes it at the end of a chunk


@dataclass(frozen=True, slots=True)
class _Piece:
    """One chunk as three parts: added reopen line, original text, added close line."""

    prefix: str
    body: str
    suffix: str

    @property
    def text(self) -> str:
        return self.prefix + self.body + self.suffix


def _container_prefix(prefix: str) -> str:
    """Keep blockquote markers and indentation of a fence's container, blank out list markers."""
    return "".join(c if c in "> \t" else " " for c in prefix)


def _find_fences(text: str, lines: Sequence[str], starts: Sequence[int]) -> list[_Fence]:
    fences: list[_Fence] = []
    for token in _PARSER.parse(text):
        if token.type != "fence" or token.map is None:
            continue
        first, last = token.map
        line = lines[first]
        idx = line.find(token.markup)
        if idx < 0:
            continue
        prefix = _container_prefix(line[:idx])
        body_lines = len(token.content.splitlines())
        closed = last - first - 1 > body_lines
        body_start = starts[first + 1] if first + 1 < len(starts) else len(text)
        if closed:
            body_end = starts[last - 1]
            end = starts[last] if last < len(starts) else len(text)
        else:
            body_end = end = starts[last] if last < len(starts) else len(text)
        fences.append(
            _Fence(
                open_start=starts[first],
                body_start=min(body_start, body_end),
                body_end=body_end,
                end=end,
                opener=(prefix + line[idx:]).rstrip(),
                closer=prefix + token.markup,
            )
        )
    return fences


class _Splitter:
    def __init__(self, text: str, limit: int, unit: Unit) -> None:
        self.text = text
        self.limit = limit
        self.unit = unit
        sizes = [1] * len(text) if unit == "chars" else [len(c.encode("utf-8")) for c in text]
        self.cum = [0, *accumulate(sizes)]
        lines = text.split("\n")
        starts = [0, *accumulate(len(line) + 1 for line in lines[:-1])]
        worst = _MAX_CHAR[unit]
        self.fences = [
            f
            for f in _find_fences(text, lines, starts)
            if measure(f.opener, unit) + measure(f.closer, unit) + 2 + worst <= limit
        ]
        self.fence_starts = [f.open_start for f in self.fences]
        n = len(text)
        self.lines_cuts = [i + 1 for i, c in enumerate(text) if c == "\n" and i + 1 < n]
        self.para_cuts = [c for c in self.lines_cuts if c >= 2 and text[c - 2] == "\n"]
        # Just before or just after a run of spaces; the spaces themselves are dropped at the cut.
        self.word_cuts = [i for i in range(1, n) if (text[i] in " \t") != (text[i - 1] in " \t")]

    def size(self, start: int, end: int) -> int:
        return self.cum[end] - self.cum[start]

    def fence_at(self, offset: int) -> _Fence | None:
        """The fence whose region [open_start, end) holds ``offset``."""
        i = bisect.bisect_right(self.fence_starts, offset) - 1
        if i >= 0:
            fence = self.fences[i]
            if fence.open_start <= offset < fence.end:
                return fence
        return None

    def inside(self, offset: int) -> _Fence | None:
        """The fence whose body holds a cut at ``offset`` (strictly between its fence lines)."""
        fence = self.fence_at(offset)
        if fence is not None and fence.body_start < offset < fence.body_end:
            return fence
        return None

    def valid(self, cut: int) -> bool:
        fence = self.fence_at(cut)
        if fence is None or cut == fence.open_start:
            return True
        return fence.body_start < cut < fence.body_end

    def piece(self, pos: int, cut: int, prefix: str) -> _Piece:
        body = self.text[pos:cut]
        fence = self.inside(cut)
        if fence is not None:
            newline = "" if body.endswith("\n") else "\n"
            return _Piece(prefix=prefix, body=body, suffix=newline + fence.closer)
        return _Piece(prefix=prefix, body=body.rstrip(), suffix="")

    def cost(self, pos: int, cut: int, prefix_size: int) -> int:
        fence = self.inside(cut)
        extra = 0
        if fence is not None:
            extra = measure(fence.closer, self.unit) + (0 if self.text[cut - 1] == "\n" else 1)
        return prefix_size + self.size(pos, cut) + extra

    def choose(self, pos: int, prefix_size: int) -> int:
        budget = self.limit - prefix_size
        max_cut = bisect.bisect_right(self.cum, self.cum[pos] + budget) - 1
        half = self.cum[pos] + budget // 2
        for min_offset in (bisect.bisect_left(self.cum, half), pos + 1):
            for cuts in (self.para_cuts, self.lines_cuts, self.word_cuts):
                i = bisect.bisect_right(cuts, max_cut) - 1
                while i >= 0 and cuts[i] >= max(min_offset, pos + 1):
                    cut = cuts[i]
                    if self.valid(cut) and self.cost(pos, cut, prefix_size) <= self.limit:
                        return cut
                    i -= 1
        for cut in range(max_cut, pos, -1):
            if self.valid(cut) and self.cost(pos, cut, prefix_size) <= self.limit:
                return cut
        raise AssertionError(f"no cut within limit {self.limit} at offset {pos}")  # pragma: no cover

    def run(self) -> list[_Piece]:
        text, n = self.text, len(self.text)
        pieces: list[_Piece] = []
        pos = 0
        prefix = ""
        while pos < n:
            if prefix == "":
                while pos < n and text[pos] == "\n":
                    pos += 1
                if pos >= n:
                    break
            prefix_size = measure(prefix, self.unit)
            if prefix_size + self.size(pos, n) <= self.limit:
                pieces.append(_Piece(prefix=prefix, body=text[pos:].rstrip(), suffix=""))
                break
            cut = self.choose(pos, prefix_size)
            piece = self.piece(pos, cut, prefix)
            if piece.body.strip() or piece.suffix:
                pieces.append(piece)
            fence = self.inside(cut)
            prefix = fence.opener + "\n" if fence is not None else ""
            pos = cut
            if fence is None and text[cut - 1] != "\n":
                while pos < n and text[pos] in " \t":
                    pos += 1
        return [p for p in pieces if p.body.strip() or p.prefix]


def _pieces(text: str, *, limit: int, unit: Unit = "chars") -> list[_Piece]:
    if limit < _MAX_CHAR[unit]:
        raise ValueError(f"limit {limit} is too small for unit {unit!r} (minimum {_MAX_CHAR[unit]})")
    text = normalize_newlines(text)
    if not text.strip():
        return []
    return _Splitter(text, limit, unit).run()


def split(text: str, *, limit: int, unit: Unit = "chars") -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` ``unit`` each; ``[]`` for blank text.

    Leading and trailing blank lines of chunks are dropped; everything else is kept. A code fence
    cut across chunks is closed and reopened (when the fence lines themselves fit the limit).
    """
    return [p.text for p in _pieces(text, limit=limit, unit=unit)]


def split_rendered(markdown: str, render: Callable[[str], str], *, limit: int, unit: Unit = "chars") -> list[str]:
    """Split Markdown, then render each chunk into a dialect; every rendered chunk fits ``limit``.

    Splitting the source (not the rendered text) keeps dialect syntax such as Slack's ``<url|text>``
    or ``&amp;`` whole. Rendering can grow a chunk (escaping), so a chunk that grew past the limit is
    split again from its source with a proportionally smaller limit.
    """
    out: list[str] = []
    for source in split(markdown, limit=limit, unit=unit):
        out.extend(_render_fitting(source, render, limit=limit, unit=unit, depth=0))
    return out


def _render_fitting(source: str, render: Callable[[str], str], *, limit: int, unit: Unit, depth: int) -> list[str]:
    rendered = render(source)
    size = measure(rendered, unit)
    if size <= limit:
        return [rendered] if rendered.strip() else []
    smaller = max(_MAX_CHAR[unit], int(limit * measure(source, unit) / size * 0.9))
    if depth >= 4 or smaller >= measure(source, unit):
        # Rendering expands even tiny pieces past the limit: split the rendered text itself.
        return split(rendered, limit=limit, unit=unit)
    out: list[str] = []
    for part in split(source, limit=smaller, unit=unit):
        out.extend(_render_fitting(part, render, limit=limit, unit=unit, depth=depth + 1))
    return out
