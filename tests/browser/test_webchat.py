"""The web chat page driven in headless Chromium against the fake backend (webchat_backend.py).

Tests that take ``chat_site`` only use the portable surface and can run against the real server;
tests that take ``fake_server`` script frames a real model cannot produce on cue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from webchat_backend import ChatSite, Connection, FakeChatServer, Frame
from webchat_page import OpenChat, PageProbe

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

TRANSCRIPT_JS = """els => els.map(e => [
  e.classList.contains('user') ? 'user' : 'assistant',
  (e.querySelector('.text') || e.querySelector('.body')).innerText.trim(),
])"""


async def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")


async def transcript(page: Page) -> list[tuple[str, str]]:
    rows = await page.locator("#log article.msg").evaluate_all(TRANSCRIPT_JS)
    return [(role, text) for role, text in rows]


async def expect_transcript(page: Page, expected: list[tuple[str, str]]) -> None:
    """Wait until the rendered conversation equals ``expected``; on timeout show what was there."""
    with contextlib.suppress(PlaywrightTimeoutError):
        await page.wait_for_function(
            f"expected => JSON.stringify(({TRANSCRIPT_JS})"
            "([...document.querySelectorAll('#log article.msg')])) === JSON.stringify(expected)",
            arg=expected, timeout=15_000)
    assert await transcript(page) == expected


def last_reply(page: Page) -> Locator:
    return page.locator("#log article.msg.assistant").last


def assert_clean(probe: PageProbe) -> None:
    assert probe.errors == [], probe.errors
    assert probe.policy_violations() == [], probe.policy_violations()
    assert probe.off_site() == [], probe.off_site()


def accepted(msg_id: str) -> Frame:
    return {"type": "accepted", "reply_to": msg_id}


def delta(msg_id: str, text: str) -> Frame:
    return {"type": "delta", "reply_to": msg_id, "text": text}


def done(msg_id: str, text: str, **extra: Any) -> Frame:
    return {"type": "done", "reply_to": msg_id, "text": text, **extra}


# ---------------------------------------------------------------------------------------------------
async def test_streamed_deltas_append_and_done_replaces_them(fake_server: FakeChatServer,
                                                            open_chat: OpenChat) -> None:
    accept, finish = asyncio.Event(), asyncio.Event()

    async def script(conn: Connection, frame: Frame) -> None:
        await accept.wait()
        await conn.send(accepted(frame["id"]))
        await conn.send(delta(frame["id"], "Hel"))
        await conn.send(delta(frame["id"], "lo, wor"))
        await finish.wait()
        await conn.send(done(frame["id"], "Hello, world! (final)"))

    fake_server.on_message = script
    page, probe = await open_chat()
    await send(page, "hi there")
    frame = await fake_server.wait_for_frame("message")
    assert frame["text"] == "hi there"
    assert set(frame) == {"type", "id", "text"} and frame["id"]

    user = page.locator("#log article.msg.user").last
    assert await user.get_attribute("data-id") == frame["id"]
    await expect(user).to_have_attribute("data-state", "sending")
    await expect(user.locator(".meta")).to_have_text("Sending…")

    accept.set()
    reply = page.locator(f'#log article.msg.assistant[data-reply-to="{frame["id"]}"]')
    await expect(reply.locator(".body")).to_have_text("Hello, wor")
    await expect(reply).to_have_attribute("data-state", "streaming")
    await expect(reply).to_have_attribute("aria-busy", "true")
    await expect(user).to_have_attribute("data-state", "sent")
    await expect(user.locator(".meta")).to_be_hidden()
    stop = page.get_by_role("button", name="Stop")
    await expect(stop).to_be_visible()

    finish.set()
    await expect(reply.locator(".body")).to_have_text("Hello, world! (final)")
    await expect(reply).to_have_attribute("aria-busy", "false")
    await expect(stop).to_be_hidden()
    assert await transcript(page) == [("user", "hi there"), ("assistant", "Hello, world! (final)")]
    await expect(page.locator("#empty")).to_be_hidden()
    await expect(page.locator("#announcer")).to_contain_text("Hello, world! (final)")
    assert_clean(probe)


async def test_markdown_renders_bold_code_lists_and_links(chat_site: ChatSite, open_chat: OpenChat) -> None:
    chat_site.answer(
        "Here is **bold** and `inline code`.\n\n",
        "```python\nprint('hi')\n```\n\n",
        "- one\n- two\n\n1. first\n\n",
        "Read [the docs](https://example.com/docs).",
    )
    page, probe = await open_chat()
    await send(page, "format please")
    reply = last_reply(page)
    await expect(reply).to_have_attribute("data-state", "done")
    body = reply.locator(".body")
    await expect(body.locator("p strong")).to_have_text("bold")
    await expect(body.locator("p > code")).to_have_text("inline code")
    code = body.locator("pre > code")
    await expect(code).to_have_class("language-python")
    assert await code.text_content() == "print('hi')\n"
    await expect(body.locator("ul > li")).to_have_text(["one", "two"])
    await expect(body.locator("ol > li")).to_have_text(["first"])
    link = body.get_by_role("link", name="the docs")
    await expect(link).to_have_attribute("href", "https://example.com/docs")
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    assert_clean(probe)


XSS_PAYLOAD = "\n\n".join([
    "Raw image: <img src=x onerror=\"window.__xss='img'\">",
    "<script>window.__xss='script'</script>",
    "[click me](javascript:window.__xss='link')",
    "<a href=\"javascript:window.__xss='anchor'\">raw anchor</a>",
    "[entity](&#106;avascript:window.__xss='entity')",
    "<javascript:window.__xss='autolink'>",
    "[quote](https://example.com/\"onmouseover=\"window.__xss='attr')",
    "![pixel](https://tracker.invalid/pixel.png)",
    "<iframe src=\"javascript:window.__xss='iframe'\"></iframe>",
    "<svg onload=\"window.__xss='svg'\"></svg>",
    "[data](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9MTwvc2NyaXB0Pg==)",
])

INERT_JS = """root => {
  const own = sel => [...root.querySelectorAll(sel)].filter(e => !e.closest('#composer'));
  const attrs = own('*').flatMap(e => [...e.attributes].map(a => a.name));
  return {
    live: own('img, script, iframe, svg, object, embed, style, form, input').length,
    handlers: attrs.filter(n => n.toLowerCase().startsWith('on')),
    schemes: [...root.querySelectorAll('a[href]')].map(a => new URL(a.href).protocol),
  };
}"""


async def assert_inert(page: Page, root: Locator) -> None:
    found = await root.evaluate(INERT_JS)
    assert found["live"] == 0, found
    assert found["handlers"] == [], found
    assert set(found["schemes"]) <= {"http:", "https:", "mailto:"}, found
    assert await page.evaluate("window.__xss") is None


async def test_untrusted_reply_cannot_run_script(chat_site: ChatSite, open_chat: OpenChat) -> None:
    chunks = [XSS_PAYLOAD[i:i + 7] for i in range(0, len(XSS_PAYLOAD), 7)]  # partial tags mid-stream too
    chat_site.answer(*chunks)
    page, probe = await open_chat()
    await send(page, "show me something nasty")
    reply = last_reply(page)
    await expect(reply).to_have_attribute("data-state", "done")
    body = reply.locator(".body")
    await assert_inert(page, page.locator("#log"))

    text = await body.inner_text()
    assert "<script>window.__xss='script'</script>" in text
    assert "<img src=x onerror=\"window.__xss='img'\">" in text
    assert "[click me](javascript:window.__xss='link')" in text
    await expect(body.locator("a.image-link")).to_have_text("pixel")
    await expect(body.locator("a.image-link")).to_have_attribute("href", "https://tracker.invalid/pixel.png")

    await body.get_by_text("[click me](javascript:", exact=False).click()
    await body.get_by_text("raw anchor", exact=False).click()
    await body.get_by_role("link", name="quote").hover()
    attr_link = await body.get_by_role("link", name="quote").get_attribute("href")
    assert attr_link == "https://example.com/%22onmouseover=%22window.__xss='attr'"
    await assert_inert(page, page.locator("#log"))
    assert_clean(probe)


async def test_untrusted_history_and_error_text_stay_text(fake_server: FakeChatServer,
                                                        open_chat: OpenChat) -> None:
    fake_server.remember("alice", "user", "<img src=x onerror=\"window.__xss='hist-user'\">", "h1")
    fake_server.remember("alice", "assistant",
                         "<b onmouseover=\"window.__xss='hist'\">hi</b><script>x()</script>")
    fake_server.fail_next("<img src=x onerror=\"window.__xss='error'\"> failed", kind="<b>kind</b>")
    page, probe = await open_chat()
    await send(page, "<script>window.__xss='mine'</script>")
    await expect(last_reply(page).locator(".error-note")).to_contain_text(
        "<img src=x onerror=\"window.__xss='error'\"> failed")
    await expect_transcript(page, [
        ("user", "<img src=x onerror=\"window.__xss='hist-user'\">"),
        ("assistant", "<b onmouseover=\"window.__xss='hist'\">hi</b><script>x()</script>"),
        ("user", "<script>window.__xss='mine'</script>"),
        ("assistant", ""),
    ])
    await fake_server.push("alice", {"type": "error", "reply_to": None,
                                     "message": "<img src=x onerror=alert(1)>"})
    await expect(page.get_by_role("alert")).to_have_text("<img src=x onerror=alert(1)>")
    await assert_inert(page, page.locator("body"))
    assert_clean(probe)


async def test_model_error_is_shown_next_to_its_message_and_can_be_retried(fake_server: FakeChatServer,
                                                                          open_chat: OpenChat) -> None:
    fake_server.fail_next("The model is overloaded (HTTP 529). Try again in a minute.", kind="overloaded")
    fake_server.answer("Second time lucky.")
    page, probe = await open_chat()
    await send(page, "are you there?")
    reply = last_reply(page)
    note = reply.locator(".error-note")
    await expect(note).to_contain_text(
        "Model busy: The model is overloaded (HTTP 529). Try again in a minute.")
    first = await fake_server.wait_for_frame("message")
    assert await reply.get_attribute("data-reply-to") == first["id"]
    follows = await page.locator(f'#log article[data-id="{first["id"]}"]').evaluate(
        "e => e.nextElementSibling && e.nextElementSibling.dataset.replyTo")
    assert follows == first["id"]
    await expect(page.locator("#announcer")).to_contain_text("overloaded (HTTP 529)")
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()

    await note.get_by_role("button", name="Try again").click()
    second = await fake_server.wait_for_frame("message", 2)
    assert second["text"] == "are you there?" and second["id"] != first["id"]
    await expect_transcript(page, [("user", "are you there?"), ("assistant", ""),
                                   ("user", "are you there?"), ("assistant", "Second time lucky.")])
    assert_clean(probe)


async def test_connection_level_error_is_shown_as_an_alert(fake_server: FakeChatServer,
                                                          open_chat: OpenChat) -> None:
    page, probe = await open_chat()
    await expect(page.get_by_role("alert")).to_be_hidden()
    await fake_server.push("alice", {"type": "error", "reply_to": None, "message": "Server restarting soon."})
    await expect(page.get_by_role("alert")).to_have_text("Server restarting soon.")
    assert_clean(probe)


async def test_bad_token_shows_not_authorized_and_does_not_retry(fake_server: FakeChatServer,
                                                                open_chat: OpenChat) -> None:
    fake_server.token = "s3cret"
    page, probe = await open_chat(token="wrong", connected=False)
    await expect(page.locator("#status")).to_have_attribute("data-state", "unauthorized")
    await expect(page.get_by_role("status")).to_contain_text("Not authorized")
    await expect(page.get_by_role("alert")).to_contain_text("Not authorized")
    await expect(page.get_by_role("textbox", name="Message")).to_be_disabled()
    await page.wait_for_timeout(1_000)  # a first retry would come within 0.5 s
    assert [(c.user, c.token) for c in fake_server.connections] == [("alice", "wrong")]

    good, _ = await open_chat(token="s3cret")
    assert [(c.user, c.token) for c in fake_server.connections][-1] == ("alice", "s3cret")
    await expect(good.get_by_role("status")).to_contain_text("Connected")
    assert probe.errors == []


@pytest.mark.parametrize(("code", "shown"), [
    (4404, "This chat does not exist or is switched off."),
    (4400, "The server refused this chat: user id too long."),
])
async def test_refused_connection_is_final(fake_server: FakeChatServer, open_chat: OpenChat,
                                           code: int, shown: str) -> None:
    fake_server.refuse = (code, "user id too long")
    page, probe = await open_chat(connected=False)
    await expect(page.get_by_role("alert")).to_have_text(shown)
    await expect(page.get_by_role("status")).to_contain_text("Unavailable")
    await page.wait_for_timeout(1_000)  # a first retry would come within 0.5 s
    assert len(fake_server.connections) == 1
    assert probe.errors == []


STATES_JS = """() => {
  window.__states = [];
  new MutationObserver(() => window.__states.push(document.getElementById('status').dataset.state))
    .observe(document.getElementById('status'), {attributes: true, attributeFilter: ['data-state']});
}"""


async def test_reconnect_rerenders_history_and_resends_unaccepted(fake_server: FakeChatServer,
                                                                  open_chat: OpenChat) -> None:
    fake_server.answer("Answer one")
    page, probe = await open_chat()
    await page.evaluate(STATES_JS)
    await send(page, "first")
    await expect(last_reply(page).locator(".body")).to_have_text("Answer one")

    async def drop_before_storing(conn: Connection, frame: Frame) -> None:
        fake_server.on_message = None
        # Meanwhile the user chatted from another device: the server's history has it, this page not.
        fake_server.remember("alice", "user", "from my phone", "p1")
        fake_server.remember("alice", "assistant", "phone answer")
        await conn.ws.close(code=1012, message=b"restarting")

    fake_server.on_message = drop_before_storing
    fake_server.answer("Answer two")
    await send(page, "second")
    await expect_transcript(page, [
        ("user", "first"), ("assistant", "Answer one"),
        ("user", "from my phone"), ("assistant", "phone answer"),
        ("user", "second"), ("assistant", "Answer two"),
    ])
    assert len(fake_server.connections) == 2
    first_conn, second_conn = fake_server.connections
    sent_twice = [f for f in fake_server.frames("message") if f["text"] == "second"]
    assert len(sent_twice) == 2 and sent_twice[0]["id"] == sent_twice[1]["id"]
    assert [f["text"] for f in second_conn.received if f["type"] == "message"] == ["second"]
    assert first_conn.user == second_conn.user == "alice"
    states = await page.evaluate("window.__states")
    assert states[:3] == ["offline", "connecting", "online"], states
    await expect(page.get_by_role("status")).to_contain_text("Connected")
    assert probe.errors == []


async def test_reply_finished_while_offline_is_attached_once(fake_server: FakeChatServer,
                                                            open_chat: OpenChat) -> None:
    answer = fake_server.answer("Partial ", "text", final="Finished while you were away.", hold=True)
    page, probe = await open_chat()
    await send(page, "long question")
    await expect(last_reply(page).locator(".body")).to_have_text("Partial text")
    await fake_server.drop()
    answer.release()  # the reply is produced and stored while the page is disconnected
    await expect_transcript(page, [("user", "long question"), ("assistant", "Finished while you were away.")])
    assert len(fake_server.connections) == 2
    await expect(last_reply(page)).to_have_attribute("data-state", "done")
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    assert probe.errors == []


async def test_done_after_reconnect_without_history_attaches_to_its_message(fake_server: FakeChatServer,
                                                                           open_chat: OpenChat) -> None:
    fake_server.answer("Working", hold=True)
    page, probe = await open_chat()
    await send(page, "question one")
    first = await fake_server.wait_for_frame("message")
    await expect(last_reply(page).locator(".body")).to_have_text("Working")
    fake_server.history.clear()  # a server whose history window no longer reaches this turn
    await fake_server.drop()
    await fake_server.wait_for(lambda: len(fake_server.live()) == 1)
    await fake_server.push("alice", done(first["id"], "Answer to question one"))
    await expect_transcript(page, [("user", "question one"), ("assistant", "Answer to question one")])
    assert await last_reply(page).get_attribute("data-reply-to") == first["id"]
    assert probe.errors == []


async def test_reset_discards_the_streamed_text(fake_server: FakeChatServer, open_chat: OpenChat) -> None:
    go_reset, go_done = asyncio.Event(), asyncio.Event()

    async def script(conn: Connection, frame: Frame) -> None:
        await conn.send(accepted(frame["id"]))
        await conn.send(delta(frame["id"], "Draft that will be thrown away"))
        await go_reset.wait()
        await conn.send({"type": "reset", "reply_to": frame["id"]})
        await conn.send(delta(frame["id"], "Fresh"))
        await go_done.wait()
        await conn.send(done(frame["id"], "Fresh answer from the fallback model"))

    fake_server.on_message = script
    page, probe = await open_chat()
    await send(page, "hello")
    body = last_reply(page).locator(".body")
    await expect(body).to_have_text("Draft that will be thrown away")
    go_reset.set()
    await expect(body).to_have_text("Fresh")
    go_done.set()
    await expect(body).to_have_text("Fresh answer from the fallback model")
    assert_clean(probe)


async def test_stop_sends_cancel_for_the_streaming_message(fake_server: FakeChatServer,
                                                          open_chat: OpenChat) -> None:
    fake_server.answer("Counting: 1, 2, 3", hold=True)
    page, probe = await open_chat()
    await send(page, "count to a million")
    reply = last_reply(page)
    await expect(reply.locator(".body")).to_have_text("Counting: 1, 2, 3")
    stop = page.get_by_role("button", name="Stop")
    await stop.click()
    cancel = await fake_server.wait_for_frame("cancel")
    message = fake_server.frames("message")[0]
    assert cancel == {"type": "cancel", "id": message["id"]}
    await expect(reply.locator(".meta")).to_have_text("Stopped")
    await expect(reply.locator(".body")).to_have_text("Counting: 1, 2, 3")
    await expect(reply.locator(".error-note")).to_have_count(0)
    await expect(stop).to_be_hidden()
    assert_clean(probe)


async def test_merged_message_shows_the_shared_reply_once(fake_server: FakeChatServer,
                                                         open_chat: OpenChat) -> None:
    full = "Lisbon in three days: Alfama, Belém, Sintra."
    ids: list[str] = []

    async def script(conn: Connection, frame: Frame) -> None:
        ids.append(frame["id"])
        await conn.send(accepted(frame["id"]))
        if len(ids) == 1:
            await conn.send(delta(ids[0], "Planning"))
        else:
            await conn.send(delta(ids[0], " your trip"))
            await conn.send(done(ids[0], full))
            await conn.send(done(ids[1], full, merged_into=ids[0]))

    fake_server.on_message = script
    page, probe = await open_chat()
    await send(page, "plan a trip")
    await expect(last_reply(page).locator(".body")).to_have_text("Planning")
    await send(page, "to Lisbon, please")
    await expect_transcript(page, [("user", "plan a trip"), ("user", "to Lisbon, please"),
                                   ("assistant", full)])
    merged = page.locator(f'#log article[data-id="{ids[1]}"]')
    await expect(merged.locator(".meta")).to_have_text("Answered together with your previous message")
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    assert_clean(probe)


async def test_keyboard_only_use(fake_server: FakeChatServer, open_chat: OpenChat) -> None:
    page, probe = await open_chat()
    box = page.get_by_role("textbox", name="Message")
    await expect(box).to_be_focused()
    await page.keyboard.type("line one")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("line two")
    # An Enter that confirms an IME candidate (Chinese, Japanese input) must not send.
    await box.evaluate("e => e.dispatchEvent(new KeyboardEvent('keydown', "
                       "{key: 'Enter', isComposing: true, bubbles: true, cancelable: true}))")
    await page.keyboard.press("Enter")
    frame = await fake_server.wait_for_frame("message")
    assert frame["text"] == "line one\nline two"
    await expect(box).to_have_value("")
    await expect(box).to_be_focused()
    await expect(last_reply(page)).to_have_attribute("data-state", "done")
    assert len(fake_server.frames("message")) == 1

    await page.keyboard.press("Tab")
    send_button = page.get_by_role("button", name="Send")
    await expect(send_button).to_be_focused()
    ring = await send_button.evaluate("e => { const s = getComputedStyle(e); "
                                      "return [s.outlineStyle, parseFloat(s.outlineWidth)]; }")
    assert ring[0] != "none" and ring[1] >= 2, ring
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.type("via the button")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Space")
    second = await fake_server.wait_for_frame("message", 2)
    assert second["text"] == "via the button"
    assert_clean(probe)


CONTRAST_JS = """() => {
  const rgb = c => c.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const ratio = (a, b) => { const [x, y] = [lum(rgb(a)), lum(rgb(b))].sort((p, q) => q - p);
                           return (x + 0.05) / (y + 0.05); };
  const style = sel => getComputedStyle(document.querySelector(sel));
  const page = style('body').backgroundColor;
  return {
    text: ratio(style('body').color, page),
    muted: ratio(style('.msg.assistant .meta, .empty').color, page),
    bubble: ratio(style('.msg.user .bubble').color, style('.msg.user .bubble').backgroundColor),
    send: ratio(style('#send').color, style('#send').backgroundColor),
    code: ratio(style('.markdown pre').color, style('.markdown pre').backgroundColor),
    link: ratio(style('.markdown a').color, page),
    error: ratio(style('.error-note').color, style('.error-note').backgroundColor),
    pageLuminance: lum(rgb(page)),
  };
}"""


async def test_accessibility_smoke(fake_server: FakeChatServer, open_chat: OpenChat) -> None:
    fake_server.answer("See [this](https://example.com) and:\n\n```\ncode\n```\n\n*Tried twice.*")
    fake_server.fail_next("Too many requests; wait a minute.", kind="rate_limited")
    page, probe = await open_chat()
    assert await page.locator("html").get_attribute("lang") == "en"
    for target in [page.get_by_role("banner"), page.get_by_role("main"),
                   page.get_by_role("form", name="Send a message"),
                   page.get_by_role("region", name="Conversation"),
                   page.get_by_role("textbox", name="Message"), page.get_by_role("button", name="Send"),
                   page.get_by_role("status")]:
        await expect(target).to_have_count(1)
    await expect(page.locator('[aria-live="polite"]')).to_have_count(1)
    box = page.get_by_role("textbox", name="Message")
    await expect(box).to_have_accessible_description("Enter sends. Shift+Enter starts a new line.")
    await send(page, "first")
    await expect(last_reply(page)).to_have_attribute("data-state", "done")
    await send(page, "second")
    await expect(last_reply(page)).to_have_attribute("data-state", "error")
    await expect(page.locator('[aria-live="polite"]')).to_contain_text("Tried twice.")
    unnamed = await page.locator("button:visible").evaluate_all(
        "bs => bs.filter(b => !(b.innerText.trim() || b.getAttribute('aria-label'))).length")
    assert unnamed == 0

    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        ratios = await page.evaluate(CONTRAST_JS)
        assert (ratios["pageLuminance"] > 0.5) == (scheme == "light"), (scheme, ratios)
        low = {k: round(v, 2) for k, v in ratios.items() if k != "pageLuminance" and v < 4.5}
        assert low == {}, (scheme, low)
    assert_clean(probe)


async def test_narrow_screen_dark_scheme_and_reduced_motion(fake_server: FakeChatServer,
                                                           open_chat: OpenChat) -> None:
    answer = fake_server.answer(hold=True, final=(
        "A long identifier: " + "x" * 120 + "\n\n```\n" + "very_long_line = " + "1234567890" * 20
        + "\n```\n\n| a | b |\n|---|---|\n| " + "wide cell " * 12 + "| 2 |"))
    page, probe = await open_chat(connected=False)
    await page.set_viewport_size({"width": 320, "height": 640})
    await page.emulate_media(color_scheme="dark", reduced_motion="reduce")
    await page.locator('#status[data-state="online"]').wait_for()
    await send(page, "a message long enough to wrap on a narrow phone screen, "
                     "with an unbroken token: " + "y" * 80)
    dot = last_reply(page).locator(".typing-dot").first
    await expect(dot).to_be_attached()
    assert await dot.evaluate("e => getComputedStyle(e).animationName") == "none"
    answer.release()
    await expect(last_reply(page)).to_have_attribute("data-state", "done")
    overflow = await page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 320, overflow
    for sel in ["#send", ".msg.user .bubble", ".markdown pre"]:
        right = await page.locator(sel).last.evaluate("e => e.getBoundingClientRect().right")
        assert right <= 320, (sel, right)
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(19, 21, 25)"
    assert_clean(probe)


async def test_user_id_is_made_once_and_survives_reload(fake_server: FakeChatServer, open_chat: OpenChat,
                                                       context: BrowserContext) -> None:
    fake_server.answer("Noted.")
    page, probe = await open_chat(user=None)
    made = fake_server.connections[-1].user
    assert re.fullmatch(r"web-[0-9a-f]{24}", made), made
    await send(page, "remember me")
    await expect(last_reply(page)).to_have_attribute("data-state", "done")
    await page.reload()
    await page.locator('#status[data-state="online"]').wait_for()
    assert fake_server.connections[-1].user == made
    await expect_transcript(page, [("user", "remember me"), ("assistant", "Noted.")])
    other, _ = await open_chat(user="bob")
    assert fake_server.connections[-1].user == "bob"
    await expect(other.locator("#empty")).to_be_visible()
    assert probe.errors == []


async def test_unsent_message_survives_a_reload_while_offline(fake_server: FakeChatServer,
                                                             open_chat: OpenChat) -> None:
    async def ignore(conn: Connection, frame: Frame) -> None:
        """Neither stored nor accepted, as when the server fails before storing."""

    fake_server.on_message = ignore
    page, probe = await open_chat()
    await send(page, "do not lose me")
    first = await fake_server.wait_for_frame("message")
    await page.reload()
    await page.locator('#status[data-state="online"]').wait_for()
    assert await fake_server.wait_for_frame("message", 2) == first
    await expect_transcript(page, [("user", "do not lose me")])
    await expect(page.locator("#log article.msg.user .meta")).to_have_text("Sending…")

    fake_server.on_message = None
    fake_server.answer("Got it.")
    await fake_server.drop()
    await expect_transcript(page, [("user", "do not lose me"), ("assistant", "Got it.")])
    assert fake_server.frames("message") == [first] * 3
    assert await page.evaluate("Object.keys(localStorage).filter(k => k.includes('outbox'))") == []
    assert probe.errors == []


async def test_page_loads_only_its_own_relative_assets(fake_server: FakeChatServer,
                                                       open_chat: OpenChat) -> None:
    page, probe = await open_chat(token="t0k")
    assert sorted(fake_server.http_paths) == sorted([
        "/t/acme/chat?user=alice&token=t0k",
        "/static/chat.css", "/static/markdown-it.min.js", "/static/chat.js",
    ])
    conn = fake_server.connections[-1]
    assert (conn.user, conn.token) == ("alice", "t0k")
    assert await page.title() == "Chat · acme"
    assert_clean(probe)


async def test_screenshot_of_a_conversation(fake_server: FakeChatServer, open_chat: OpenChat,
                                            tmp_path: Path) -> None:
    """Renders a realistic conversation for a human to judge (set WEBCHAT_SCREENSHOT to keep it)."""
    fake_server.remember("alice", "user", "What does the budget guard do?", "s1")
    fake_server.remember("alice", "assistant", (
        "It keeps every request inside the model's **context window**:\n\n"
        "1. Count the prompt with the model's tokenizer.\n"
        "2. Cap `max_tokens` to what is left.\n"
        "3. Compact old turns when the history no longer fits.\n\n"
        "```python\nprompt + max_tokens <= context_window\n```"))
    fake_server.fail_next("The model is overloaded (HTTP 529). Try again in a minute.", kind="overloaded")
    answer = fake_server.answer("Sure — here is a short example:\n\n",
                                "- `botframework serve --config app.yaml`\n",
                                "- open `/t/acme/chat`", hold=True)
    page, probe = await open_chat()
    await send(page, "Summarize the design in one line.")
    await expect(last_reply(page)).to_have_attribute("data-state", "error")
    await send(page, "How do I run it?")
    await expect(last_reply(page).locator(".body li")).to_have_count(2)
    await page.get_by_role("textbox", name="Message").fill("Thanks!")
    shot = tmp_path / "webchat.png"
    await page.set_viewport_size({"width": 900, "height": 860})
    await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if target := os.environ.get("WEBCHAT_SCREENSHOT"):
        shutil.copyfile(shot, target)
    answer.release()
    assert_clean(probe)
