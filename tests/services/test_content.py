"""The hostile-pattern detector: markup a browser would parse, never words in prose; Markdown
code is exempt. And which Unicode direction controls a message may carry."""

from __future__ import annotations

import time

import pytest

from streamzy.services.content import bidi_problem, clean_message, suspicious_pattern

PROSE = [
    "My favourite language? JavaScript: it runs everywhere.",
    "javascript: the good parts is a short book",
    "VBScript: remember that?",
    "data: text/html is the media type of a web page",
    "a < b and c > d",
    "x<y && y>z",
    "the <script> element runs code",  # written in code below; here it is a real tag
    "turn it on=off later",
    "<b>on=duty</b> all week",
    "mailto:someone@example.org and https://example.org/a:b",
    "Use `<button onclick=\"save()\">` in your template",
    "``<script>alert(1)</script>`` is what they tried",
    "```html\n<img src=x onerror=alert(1)>\n<a href=\"javascript:go()\">go</a>\n```\nthat was it",
    "~~~\n<iframe src=//evil></iframe>\n~~~",
    "```\n<script>unclosed fence runs to the end</script>",
]
HOSTILE = [
    ("<script>alert(1)</script>", "script_tag"),
    ("</SCRIPT >", "script_tag"),
    ("\uff1cscript\uff1ealert(1)", "script_tag"),  # full-width forms fold to < and >
    ("click javascript:alert(1)", "javascript_url"),
    ('<a href="javascript:alert(4)">click</a>', "javascript_url"),
    ("(JavaScript:void(0))", "javascript_url"),
    ("java\tscript:alert(1)", "javascript_url"),
    ("vbscript:msgbox(1)", "javascript_url"),
    ("data:text/html;base64,PHNjcmlwdD4=", "data_html_url"),
    ('<img src=x onerror="alert(1)">', "event_handler"),
    ("<svg/onload=alert(2)>", "event_handler"),
    ('Use <button onclick="save()"> in your template', "event_handler"),
    ("<IFRAME src=//evil>", "iframe_tag"),
    ("<embed src=x.swf>", "iframe_tag"),
    ("`a` <script>x</script> `b`", "script_tag"),  # outside the spans
    ("``<script>x</script>`", "script_tag"),  # unmatched backticks are no span
]


@pytest.mark.parametrize("text", PROSE)
def test_prose_and_code_are_not_suspicious(text: str) -> None:
    if text == "the <script> element runs code":
        assert suspicious_pattern(text) == "script_tag"
        assert suspicious_pattern("the `<script>` element runs code") is None
        return
    assert suspicious_pattern(text) is None


@pytest.mark.parametrize(("text", "name"), HOSTILE)
def test_markup_and_script_urls_are_suspicious(text: str, name: str) -> None:
    assert suspicious_pattern(text) == name


def test_the_detector_is_linear() -> None:
    """No pattern backtracks through a long hostile-looking text."""
    for text in ("<a " + " on" * 7000, "<" * 20_000, "`" * 20_000, "<a " * 7000 + ">",
                 "javascript" * 2000, "```\n" * 5000):
        started = time.perf_counter()
        suspicious_pattern(text)
        assert time.perf_counter() - started < 1.0, text[:20]


@pytest.mark.parametrize("text", [
    "\u05e9\u05dc\u05d5\u05dd \u2067world\u2069!",  # an isolate, closed
    "\u202bembedded \u05e2\u05d1\u05e8\u05d9\u05ea\u202c and back",  # an embedding, closed
    "\u2068a \u2067b\u2069 c\u2069",  # nested
    "\u200f\u200e\u061c",  # marks are not controls
])
def test_balanced_direction_controls_are_text(text: str) -> None:
    assert bidi_problem(text) is None
    assert clean_message(text, 4000)[1] is None


@pytest.mark.parametrize(("text", "why"), [
    ("access\u202e\u2066 level\u2069\u2066", "direction overrides"),  # Trojan Source
    ("\u202dforced", "direction overrides"),
    ("\u2067never closed", "unbalanced direction controls"),
    ("stray close\u2069", "unbalanced direction controls"),
    ("\u2067crossed\u202c\u2069", "unbalanced direction controls"),
    ("\u2067spills over\n\u2069", "unbalanced direction controls"),
    ("\u2066" * 17 + "\u2069" * 17, "direction controls nested too deep"),
])
def test_overrides_and_unbalanced_controls_are_refused(text: str, why: str) -> None:
    assert bidi_problem(text) == why
    problem = clean_message(text, 4000)[1]
    assert problem is not None and problem.code == "invalid_text" and why in problem.message


def test_other_control_characters_are_still_refused() -> None:
    problem = clean_message("bell\x07", 4000)[1]
    assert problem is not None and problem.code == "invalid_text"
