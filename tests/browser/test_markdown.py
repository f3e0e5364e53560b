"""Message Markdown in the browser: the safe subset drawn as elements, hostile text inert.

static/markdown.js builds each message body from markdown-it's tokens with createElement,
textContent and setAttribute. These journeys read back the DOM it built, live, from
history and from the sender's own ack, and check that nothing a message says can become
markup, a script URL, an image or a hang. Each page also records CSP violation events.
"""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

import pytest

from streamzy.storage.models import User
from tests.browser.conftest import BrowserServer, Browsing, artifact, expect
from tests.browser.helpers import open_room
from tests.waiting import assert_eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

BODIES = "#messages .message[data-seq] .text"
REL = "noopener noreferrer nofollow"
# The only elements a message body may contain.
ALLOWED_TAGS = {"P", "BR", "STRONG", "EM", "CODE", "PRE", "BLOCKQUOTE", "UL", "OL", "LI", "A"}
SAFE_HREF = re.compile(r"^(https?|mailto):", re.IGNORECASE)

# Injected by Playwright before any page script, so the page's CSP does not apply to it.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""
INNER_HTML = "nodes => nodes.map(n => n.innerHTML)"
TEXT_CONTENT = "nodes => nodes.map(n => n.textContent)"
TAGS_INSIDE = "nodes => [...new Set(nodes.flatMap(n => [...n.querySelectorAll('*')].map(e => e.tagName)))]"
HREFS = "nodes => nodes.map(n => n.getAttribute('href'))"


def link(href: str, text: str) -> str:
    """A rendered link as the browser serialises it."""
    h = html.escape(href)
    return (f'<a href="{h}" title="{h}" rel="{REL}" target="_blank">'
            f"{html.escape(text, quote=False)}</a>")


# What people type, and the body it must become (the browser's own serialisation).
FORMATTED: list[tuple[str, str]] = [
    ("**bold** and *italic* and _also italic_ and `a < b`",
     "<p><strong>bold</strong> and <em>italic</em> and <em>also italic</em> and "
     "<code>a &lt; b</code></p>"),
    ("first line\nsecond line\n\nnew paragraph",
     "<p>first line<br>second line</p><p>new paragraph</p>"),
    ("```\nconst x = 1;\n  if (x) { go(); }\n```",
     "<pre><code>const x = 1;\n  if (x) { go(); }</code></pre>"),
    ("~~~python\nprint('<hi>')\n~~~",
     "<pre><code>print('&lt;hi&gt;')</code></pre>"),
    ("> quoted **words**\n> > nested",
     "<blockquote><p>quoted <strong>words</strong></p>"
     "<blockquote><p>nested</p></blockquote></blockquote>"),
    ("- one\n- two *2*\n\n3. three\n4. four",
     "<ul><li>one</li><li>two <em>2</em></li></ul><ol start=\"3\"><li>three</li><li>four</li></ol>"),
    ("1. first\n2. second\n   > quoted in it\n\n0) zero",
     "<ol><li>first</li><li>second<blockquote><p>quoted in it</p></blockquote></li></ol>"
     "<ol start=\"0\"><li>zero</li></ol>"),
    ("[the docs](https://example.com/docs?a=1&b=2) or <https://example.org> or "
     "https://example.net/path. Mail mailto:team@example.com",
     "<p>" + link("https://example.com/docs?a=1&b=2", "the docs") + " or "
     + link("https://example.org/", "https://example.org") + " or "
     + link("https://example.net/path", "https://example.net/path") + ". Mail "
     + link("mailto:team@example.com", "mailto:team@example.com") + "</p>"),
    # Not in the subset: shown as typed. An image is a "!" and a link, never an <img>.
    ("# Not a heading\n![logo](https://example.com/logo.png) ~~kept~~ example.com",
     "<p># Not a heading<br>!" + link("https://example.com/logo.png", "logo")
     + " ~~kept~~ example.com</p>"),
]

# Written in code, so the server accepts them even when it refuses markup outside code.
IN_CODE = [("`<b>x</b>`", "<b>x</b>"),
           ("`<img src=x onerror=alert(1)>`", "<img src=x onerror=alert(1)>"),
           ("```\n<script>alert(1)</script>\n```", "<script>alert(1)</script>")]
# Links to anything but http(s) or mailto: the whole [text](url) stays text.
SCRIPT_LINKS = ["[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))",
                "[x](data:text/html,<script>alert(1)</script>)", "[x](vbscript:msgbox(1))",
                "[x]( java\tscript:alert(1))", "[x](java&#x09;script:alert(1))",
                "[x](&#x6A;avascript:alert(1))", "<javascript:alert(1)>",
                "[x](//evil.example/)", "[x](/rooms/general)", "[x](file:///etc/passwd)"]
RAW_MARKUP = ["<b>x</b>", "<img src=x onerror=alert(1)>", "<a href=javascript:alert(1)>a</a>",
              "<iframe src=//evil.example/></iframe>"]
# Characters no message may carry (the server refuses them), given to render() directly.
REFUSED_BY_SERVER = ["[x](\x01javascript:alert(1))", "[x](\x00javascript:alert(1))",
                     "[x](\u00a0javascript:alert(1))", "<\x0bjavascript:alert(1)>"]

# 1,000 nested quotes and 10,000 asterisks, and other shapes that make parsers work hard.
# Text before the nesting: drawing only what lies above the bound would drop "deep"/"x".
PATHOLOGICAL = ["quoted:\n" + "> " * 1000 + "deep", "*" * 10_000, "list:\n" + "- " * 1000 + "x",
                "**a " * 2500,
                "[" * 5000 + "]" * 5000, "`" * 10_000, "_*" * 5000, "<" * 10_000]


async def watched_page(browsing: Browsing, user: User, **options: Any) -> Any:
    """A signed-in page that records CSP violations from its first script on."""
    page = await browsing.page(user, **options)
    await page.add_init_script(script=CSP_RECORDER)
    return page


async def assert_no_csp_violations(page: Any) -> None:
    assert await page.evaluate("window.__cspViolations") == []


async def say(page: Any, text: str) -> None:
    composer = page.get_by_label("Message #general")
    await composer.fill(text)
    await composer.press("Enter")
    await expect(composer).to_have_value("")


async def bodies(page: Any, script: str) -> Any:
    return await page.locator(BODIES).evaluate_all(script)


async def test_the_subset_renders_as_elements_live_from_history_and_from_the_ack(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    kim = await server.make_user("kim")
    lee = await server.make_user("lee")
    sender = await watched_page(browsing, kim)
    reader = await watched_page(browsing, lee)
    await open_room(sender, "general")
    await open_room(reader, "general")
    for text, _ in FORMATTED:
        await say(sender, text)
    expected = [body for _, body in FORMATTED]
    await expect(reader.locator(BODIES)).to_have_count(len(FORMATTED))
    await assert_eventually(lambda: bodies(reader, INNER_HTML), expected)       # live
    await expect(sender.locator(BODIES)).to_have_count(len(FORMATTED))
    await assert_eventually(lambda: bodies(sender, INNER_HTML), expected)       # own ack
    await reader.reload()
    await expect(reader.locator(BODIES)).to_have_count(len(FORMATTED))
    await assert_eventually(lambda: bodies(reader, INNER_HTML), expected)       # history

    for page in (sender, reader):
        body = page.locator(BODIES).first
        assert await body.evaluate("n => n.tagName") == "DIV"
        assert await body.get_attribute("dir") == "auto"
        links = page.locator("#messages .text a")
        await expect(links).to_have_count(5)
        for index in range(5):
            await expect(links.nth(index)).to_have_attribute("rel", REL)
            await expect(links.nth(index)).to_have_attribute("target", "_blank")
        await expect(page.locator("#messages img, #messages h1")).to_have_count(0)
        await assert_no_csp_violations(page)


@pytest.mark.settings(suspicious_messages="flag")
async def test_hostile_text_reaches_the_browser_and_stays_inert(
        browsing: Browsing, server: BrowserServer) -> None:
    await server.room("general")
    kim = await server.make_user("kim")
    lee = await server.make_user("lee")
    sender = await watched_page(browsing, kim)
    reader = await watched_page(browsing, lee)
    await open_room(sender, "general")
    await open_room(reader, "general")
    control = "[fine](https://example.com/)"  # the one link that must appear
    sent = [code for code, _ in IN_CODE] + SCRIPT_LINKS + RAW_MARKUP + [control]
    for text in sent:
        await say(sender, text)

    async def check(page: Any) -> None:
        await expect(page.locator(BODIES)).to_have_count(len(sent))
        texts = await bodies(page, TEXT_CONTENT)
        # Script links and raw markup are shown as typed (character references decoded,
        # as Markdown does: into text, where they are only characters).
        literal = [html.unescape(text) for text in SCRIPT_LINKS + RAW_MARKUP]
        assert texts[len(IN_CODE):len(IN_CODE) + len(literal)] == literal
        codes = await page.locator("#messages .text code").evaluate_all(TEXT_CONTENT)
        assert codes == [shown for _, shown in IN_CODE]
        assert await page.locator("#messages .text a").evaluate_all(HREFS) == [
            "https://example.com/"]
        assert set(await bodies(page, TAGS_INSIDE)) <= ALLOWED_TAGS
        await expect(page.locator("#messages img, #messages script, #messages svg, "
                                  "#messages iframe, #messages b")).to_have_count(0)
        await assert_no_csp_violations(page)

    await check(sender)   # drawn from its own acks
    await check(reader)   # live
    await open_room(reader, "general")
    await check(reader)   # from history
    assert browsing.dialogs == []  # checked again at teardown, with console errors


async def test_render_refuses_every_other_scheme_however_it_is_disguised(
        browsing: Browsing, server: BrowserServer) -> None:
    """render() itself, on text the server would refuse (control characters) as well."""
    await server.room("general")
    kim = await server.make_user("kim")
    page = await watched_page(browsing, kim)
    await open_room(page, "general")
    allowed = {"[a](HTTPS://Example.COM/A)": ["https://example.com/A"],
               "[b](  http://example.com  )": ["http://example.com/"],
               "[c](MAILTO:team@example.com)": ["mailto:team@example.com"],
               "see https://example.com/x, then": ["https://example.com/x"]}
    refused = SCRIPT_LINKS + RAW_MARKUP + REFUSED_BY_SERVER + [
        "javascript:alert(1)", "data:text/html,hi", "ftp://example.com/", "//example.com/",
        "www.example.com", "team@example.com"]
    hrefs = await page.evaluate("""sources => sources.map(source => {
        const box = document.createElement("div");
        box.append(window.StreamzyMarkdown.render(source));
        return [...box.querySelectorAll("a")].map(a => a.getAttribute("href"));
    })""", [*allowed, *refused])
    assert hrefs == [*allowed.values(), *([[]] * len(refused))]
    await assert_no_csp_violations(page)


@pytest.mark.settings(message_max_chars=20_000)
async def test_pathological_nesting_renders_promptly_and_stays_bounded(
        browsing: Browsing, server: BrowserServer) -> None:
    room = await server.room("general")
    kim = await server.make_user("kim")
    for number, text in enumerate(PATHOLOGICAL):
        await server.post(room, kim, text, f"hard-{number}")
    await server.post(room, kim, "> > > three deep", "after")
    page = await watched_page(browsing, kim)
    await open_room(page, "general")
    await expect(page.locator(BODIES)).to_have_count(len(PATHOLOGICAL) + 1)
    texts = await bodies(page, TEXT_CONTENT)
    # Too deep to draw: the whole message as text, nothing dropped.
    assert texts[0] == PATHOLOGICAL[0]
    assert texts[2] == PATHOLOGICAL[2]
    assert texts[1] == "*" * 10_000
    depth = """nodes => Math.max(...nodes.map(n => {
        let deepest = 0;
        for (const e of n.querySelectorAll("*")) {
            let d = 0;
            for (let p = e; p !== n; p = p.parentElement) d += 1;
            deepest = Math.max(deepest, d);
        }
        return deepest;
    }))"""
    assert await bodies(page, depth) <= 20
    # Ordinary nesting still draws: three quotes, one inside the other.
    await expect(page.locator("#messages .message[data-seq]").last.locator(
        ".text > blockquote > blockquote > blockquote > p")).to_have_text("three deep")

    # Each one rendered again, timed in the page: linear work takes milliseconds, a
    # backtracking or unbounded parser takes far longer than this generous bound.
    async with asyncio.timeout(30):
        times = await page.evaluate("""sources => sources.map(source => {
            const start = performance.now();
            window.StreamzyMarkdown.render(source);
            return performance.now() - start;
        })""", PATHOLOGICAL)
    slow = {source[:12]: round(ms) for source, ms in zip(PATHOLOGICAL, times, strict=True)
            if ms > 2000}
    assert slow == {}
    await assert_no_csp_violations(page)


async def test_without_the_renderer_messages_fall_back_to_plain_text(
        browsing: Browsing, server: BrowserServer) -> None:
    room = await server.room("general")
    kim = await server.make_user("kim")
    await server.post(room, kim, "**not bold** <https://example.com>", "plain")
    page = await watched_page(browsing, kim)
    await page.route("**/static/markdown.js", lambda route: route.fulfill(
        status=200, content_type="text/javascript", body="/* unavailable */"))
    await open_room(page, "general")
    await expect(page.locator(BODIES)).to_have_text(["**not bold** <https://example.com>"])
    await expect(page.locator("#messages .text *")).to_have_count(0)
    await say(page, "still *sends*")
    await expect(page.locator(BODIES)).to_have_text(["**not bold** <https://example.com>",
                                                      "still *sends*"])
    await assert_no_csp_violations(page)


LAYOUT = [
    "Release notes for **v2.4**: the _search_ got faster, see "
    "[the changelog](https://example.com/changelog) or https://example.com/a/very/long/"
    "path/that/keeps/going/and/going/without/any/break/at/all/0123456789abcdef",
    "```\nfor (let i = 0; i < 10; i++) { console.log(\"a long line of code that must "
    "scroll sideways, never wrap, even on a wide screen: \" + String(i).padStart(80, \"0\")"
    "); }\n```",
    "> Quoting someone who said *something*\n> > and a quote inside it\n\nand my answer",
    "Shopping list:\n- milk\n- `eggs`\n- bread\n\nSteps:\n1. open\n2. stir\n3. close",
    "Mail mailto:team@example.com if `npm ci` fails",
]
WIDE = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .filter(e => !e.closest('pre'))
  .slice(0, 6).map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"""


@pytest.mark.parametrize(("size", "scheme"), [((1280, 800), "light"), ((390, 844), "light"),
                                              ((390, 844), "dark")],
                         ids=["desktop", "phone", "phone-dark"])
async def test_formatted_messages_fit_the_screen_and_code_scrolls_sideways(
        browsing: Browsing, server: BrowserServer, size: tuple[int, int], scheme: str) -> None:
    room = await server.room("general")
    kim = await server.make_user("kim")
    lee = await server.make_user("lee")
    for number, text in enumerate(LAYOUT):
        await server.post(room, kim if number % 2 else lee, text, f"layout-{number}")
    phone = size[0] < 600
    page = await watched_page(browsing, kim, phone=phone, color_scheme=scheme)
    await page.set_viewport_size({"width": size[0], "height": size[1]})
    await open_room(page, "general")
    await expect(page.locator(BODIES)).to_have_count(len(LAYOUT))
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    await assert_eventually(lambda: page.evaluate(overflow), 0)
    assert await page.evaluate(WIDE) == []
    messages = page.locator("#messages")
    assert await messages.evaluate("n => n.scrollWidth - n.clientWidth") == 0
    code = page.locator("#messages pre").first
    assert await code.evaluate("n => getComputedStyle(n).whiteSpace") == "pre"
    assert await code.evaluate("n => getComputedStyle(n).overflowX") == "auto"
    assert await code.evaluate("n => n.scrollWidth > n.clientWidth")  # it scrolls, not wraps
    box = await code.bounding_box()
    assert box is not None and box["x"] + box["width"] <= size[0]
    # Links stand out from the text around them in both schemes.
    colours = await page.locator("#messages .text a").first.evaluate(
        "a => [getComputedStyle(a).color, getComputedStyle(a.closest('.text')).color]")
    assert colours[0] != colours[1]
    for end, scroll in (("top", "0"), ("bottom", "n.scrollHeight")):
        await messages.evaluate(f"n => {{ n.scrollTop = {scroll}; }}")
        await page.screenshot(path=artifact(f"markdown-{size[0]}x{size[1]}-{scheme}-{end}.png"))
    await assert_no_csp_violations(page)
