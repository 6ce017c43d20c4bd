"""Fence-aware chunking: size, content, fence and boundary guarantees, as properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from botframework.render.chunking import _pieces, measure, split, split_rendered

PARSER = MarkdownIt("commonmark")

WORD_CHARS = "abcdefghijklmnopqrstuvwxyzé中文🙂ß"
words = st.text(alphabet=WORD_CHARS, min_size=1, max_size=12)
paragraph = st.lists(words, min_size=1, max_size=40).map(" ".join)
code_line = st.text(alphabet=WORD_CHARS + " (){}=+-*#<>", max_size=60)
fence = st.tuples(st.sampled_from(["python", "", "js", "c++ title=x"]), st.lists(code_line, max_size=30)).map(
    lambda t: "```" + t[0] + "\n" + "\n".join(t[1]) + ("\n" if t[1] else "") + "```"
)
document = st.lists(st.one_of(paragraph, fence), min_size=1, max_size=12).map("\n\n".join)
units = st.sampled_from(["chars", "bytes"])


def squash(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=300, deadline=None)
@given(text=st.text(), limit=st.integers(min_value=4, max_value=120), unit=units)
def test_any_text_chunks_fit_and_lose_nothing(text: str, limit: int, unit: str) -> None:
    pieces = _pieces(text, limit=limit, unit=unit)  # type: ignore[arg-type]
    assert all(measure(p.text, unit) <= limit for p in pieces)  # type: ignore[arg-type]
    assert squash("".join(p.body for p in pieces)) == squash(text)
    assert all(p.text.strip() for p in pieces)


@settings(max_examples=120, deadline=None)
@given(doc=document, limit=st.integers(min_value=40, max_value=600), unit=units)
def test_fences_closed_and_reopened_with_same_info(doc: str, limit: int, unit: str) -> None:
    pieces = _pieces(doc, limit=limit, unit=unit)  # type: ignore[arg-type]
    chunks = [p.text for p in pieces]
    original_lines = set(doc.split("\n"))
    assert all(measure(c, unit) <= limit for c in chunks)  # type: ignore[arg-type]
    assert squash("".join(p.body for p in pieces)) == squash(doc)
    for i, chunk in enumerate(chunks):
        fence_lines = [line for line in chunk.split("\n") if line.startswith("```")]
        assert len(fence_lines) % 2 == 0, chunk
        for token in PARSER.parse(chunk):
            if token.type == "fence":
                assert token.map is not None
                first, last = token.map
                assert chunk.split("\n")[last - 1].startswith("```") and last - first >= 2
        if pieces[i].suffix:
            assert i + 1 < len(pieces)
            reopened = pieces[i + 1].prefix.rstrip("\n")
            assert reopened in original_lines and reopened.startswith("```")
            opener = next(line for line in reversed(chunk.split("\n")[:-1]) if line.startswith("```"))
            assert reopened == opener


@settings(max_examples=80, deadline=None)
@given(paras=st.lists(paragraph, min_size=2, max_size=15), limit=st.integers(min_value=200, max_value=800))
def test_short_paragraphs_are_never_cut(paras: list[str], limit: int) -> None:
    paras = [p[: limit // 2].strip() or "x" for p in paras]
    chunks = split("\n\n".join(paras), limit=limit)
    assert [p for c in chunks for p in c.split("\n\n")] == paras


@settings(max_examples=200, deadline=None)
@given(ws=st.lists(words, min_size=1, max_size=200), limit=st.integers(min_value=12, max_value=300))
def test_words_are_never_cut(ws: list[str], limit: int) -> None:
    chunks = split(" ".join(ws), limit=limit)
    assert [w for c in chunks for w in c.split(" ")] == ws


def test_prefers_lines_over_words_inside_a_paragraph() -> None:
    lines = [f"line {i} " + "word " * 8 for i in range(40)]
    chunks = split("\n".join(lines), limit=300)
    assert len(chunks) > 1
    for chunk in chunks:
        assert all(line.rstrip() in {x.rstrip() for x in lines} for line in chunk.split("\n"))


def test_utf8_bytes_never_split_a_character() -> None:
    text = "🙂" * 100 + "中文" * 100
    chunks = split(text, limit=10, unit="bytes")
    assert all(len(c.encode()) <= 10 for c in chunks)
    assert "".join(chunks) == text
    assert chunks[0] == "🙂🙂"


def test_long_code_block_is_closed_and_reopened() -> None:
    code = "\n".join(f"    x_{i} = compute({i})  # step" for i in range(200))
    text = f"Here is the code:\n\n```python\n{code}\n```\n\nThat is all."
    chunks = split(text, limit=2000)
    assert len(chunks) >= 4
    assert chunks[0].startswith("Here is the code:")
    for chunk in chunks[1:-1]:
        assert chunk.startswith("```python\n") and chunk.endswith("\n```")
    assert chunks[-1].endswith("That is all.")
    assert all(len(c) <= 2000 for c in chunks)
    # Indentation inside code survives the cut.
    assert all(line.startswith("    x_") for c in chunks for line in c.split("\n") if "compute" in line)


def test_tilde_and_blockquoted_fences_reopen_in_their_container() -> None:
    body = "\n".join(f"> line {i:03d}" for i in range(60))
    text = f"> ~~~sh\n{body}\n> ~~~"
    chunks = split(text, limit=200)
    assert len(chunks) > 1
    assert all(c.startswith("> ~~~sh\n") for c in chunks)
    assert all(c.endswith("\n> ~~~") for c in chunks)


def test_unclosed_fence_stays_unclosed_only_at_the_end() -> None:
    text = "```\n" + "\n".join(f"row {i}" for i in range(100))
    chunks = split(text, limit=120)
    assert all(c.endswith("\n```") for c in chunks[:-1])
    assert not chunks[-1].endswith("```")


def test_blank_text_gives_no_chunks_and_small_text_one() -> None:
    assert split("  \n\n ", limit=10) == []
    assert split("\n\nhello\n\n", limit=10) == ["hello"]
    with pytest.raises(ValueError, match="too small"):
        split("abc", limit=3, unit="bytes")


def test_split_rendered_resplits_when_rendering_grows_text() -> None:
    text = " ".join(["a&b<c>"] * 300)  # every & < > triples or quadruples in Slack's escaping

    def escape(s: str) -> str:
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    chunks = split_rendered(text, escape, limit=100)
    assert all(len(c) <= 100 for c in chunks)
    assert " ".join(chunks).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").split() == text.split()
    assert not any(c.endswith("&") or c.endswith("&am") for c in chunks)
