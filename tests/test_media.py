from __future__ import annotations

import base64

from botframework.errors import MediaError
from botframework.media import MAX_IMAGE_BYTES, MediaResolver, media_ref, parse_media_ref
from botframework.messages import ImagePart, Message, TextPart

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24


class Fetcher:
    def __init__(self, answers: dict[tuple[str, str, str], tuple[bytes, str] | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, str]] = []

    async def __call__(self, tenant: str, channel: str, ref: str) -> tuple[bytes, str]:
        self.calls.append((tenant, channel, ref))
        answer = self.answers.get((tenant, channel, ref), MediaError(f"no such image {ref!r}"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_references_round_trip_and_ordinary_urls_are_not_references() -> None:
    assert parse_media_ref(media_ref("slack", "https://files.slack.com/a/b.png")) == (
        "slack",
        "https://files.slack.com/a/b.png",
    )
    assert parse_media_ref("https://cdn.example.com/x.png") is None
    assert parse_media_ref("data:image/png;base64,AAAA") is None
    assert parse_media_ref("media:slack") is None


async def test_a_reference_becomes_a_data_url_of_the_fetched_bytes_once() -> None:
    fetch = Fetcher({("acme", "slack", "F1"): (PNG, "image/png")})
    resolver = MediaResolver(fetch=fetch)
    plain = Message.user("no image")
    asked = Message.user("what is this?", images=[ImagePart(url=media_ref("slack", "F1"), detail="low")])
    for _ in range(3):  # the rounds of a tool loop, then the next turn
        out = await resolver.resolve("acme", [plain, asked])
        assert out[0] is plain
        [image] = out[1].images
        assert image.url == "data:image/png;base64," + base64.b64encode(PNG).decode()
        assert (image.media_type, image.detail) == ("image/png", "low")
        assert out[1].text == "what is this?"
    assert fetch.calls == [("acme", "slack", "F1")]
    assert asked.images[0].url == "media:slack:F1"  # the stored message is not changed


async def test_tenants_never_share_a_cached_image() -> None:
    fetch = Fetcher({("acme", "slack", "F1"): (PNG, "image/png")})
    resolver = MediaResolver(fetch=fetch)
    message = Message.user("x", images=[ImagePart(url=media_ref("slack", "F1"))])
    assert (await resolver.resolve("acme", [message]))[0].images
    [other] = await resolver.resolve("beta", [message])
    assert other.images == () and "[image unavailable]" in other.text
    assert fetch.calls == [("acme", "slack", "F1"), ("beta", "slack", "F1")]


async def test_failures_become_a_note_and_keep_the_rest_of_the_message() -> None:
    fetch = Fetcher(
        {
            ("acme", "slack", "big"): (b"x" * (MAX_IMAGE_BYTES + 1), "image/png"),
            ("acme", "slack", "html"): (b"<html>login</html>", "text/html"),
            ("acme", "slack", "ok"): (PNG, "image/png"),
        }
    )
    resolver = MediaResolver(fetch=fetch, trusted_hosts=["cdn.example.com"])
    message = Message.user(
        "three pictures",
        images=[ImagePart(url=media_ref("slack", r)) for r in ("big", "html", "gone")]
        + [ImagePart(url="https://cdn.example.com/public.png"), ImagePart(url=media_ref("slack", "ok"))],
    )
    [out] = await resolver.resolve("acme", [message])
    notes = [p.text for p in out.content if isinstance(p, TextPart)]
    assert notes == ["three pictures", "[image unavailable]", "[image unavailable]", "[image unavailable]"]
    assert [i.url.split(",")[0] for i in out.images] == ["https://cdn.example.com/public.png", "data:image/png;base64"]


async def test_the_cache_is_bounded_by_size() -> None:
    fetch = Fetcher({("acme", "slack", f"F{i}"): (PNG * 40, "image/png") for i in range(4)})
    resolver = MediaResolver(fetch=fetch, max_cache_bytes=4_000)  # two encoded images (~1.7 kB each)
    messages = [Message.user(str(i), images=[ImagePart(url=media_ref("slack", f"F{i}"))]) for i in range(4)]
    await resolver.resolve("acme", messages)
    await resolver.resolve("acme", messages[-1:])  # newest still cached
    await resolver.resolve("acme", messages[:1])  # oldest was evicted: fetched again
    assert [c[2] for c in fetch.calls] == ["F0", "F1", "F2", "F3", "F0"]
