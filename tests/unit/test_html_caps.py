"""Sanitising has hard caps applied while walking the markup: size, nesting, open text styles.

Before the caps, 150,000 nested ``<div>`` (1.6 MB) took minutes (the tree builder is quadratic in
depth). The time bounds below are generous for a shared CI machine; on main they took > 10 s
already for 40,000 levels.
"""

import re
import time

import nh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatter import html_caps
from chatter.content import sanitize_email_html, sanitize_html
from chatter.html_text import html_to_text

HOSTILE = {
    "nested divs": "<div>" * 150_000 + "deep" + "</div>" * 150_000,
    "self-closed divs": "<div/>" * 150_000 + "deep",
    "unclosed spans": "<span>" * 200_000 + "deep",
    "nested tables": "<table><tr><td>" * 60_000 + "deep",
    "nested quotes": "<blockquote>" * 120_000 + "deep",
    "styles with distinct attributes": "".join(f"<b id={i}>" for i in range(30_000))
    + "<p>deep</p>" * 20_000,
    "unterminated tags": "<a" * 400_000,
    "unterminated quotes": '<a href="' * 200_000,
    "mixed": ("<div><font><i><ul><li>" * 30_000) + "deep",
    # A style left open stays active after its block closes and is re-opened in each new one.
    "styles left open in every block": "".join(f"<div><b id={i}>x</div>" for i in range(40_000))
    + "deep",
    "open styles re-opened in each paragraph": "".join(f"<b id={i}>" for i in range(16))
    + "<p>x" * 250_000,
    # </div> does not close past a table cell: each unit stays open in the browser.
    "end tags that do not close past a cell": "<div><table><tr><td></div>" * 30_000 + "deep",
}


def _depth(html: str) -> int:
    depth = deepest = 0
    for closing, name in re.findall(r"<(/?)([a-z0-9]+)", html):
        if name in html_caps.VOID:
            continue
        depth += -1 if closing else 1
        deepest = max(deepest, depth)
    return deepest


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_nesting_is_cut_in_bounded_time(name):
    started = time.perf_counter()
    safe, _ = sanitize_email_html(HOSTILE[name])
    took = time.perf_counter() - started
    assert took < 5, f"{name}: {took:.1f} s"
    # The tree may add what the markup implies: the reopened text styles and our notice.
    assert _depth(safe) <= html_caps.MAX_DEPTH + html_caps.MAX_OPEN_FORMATTING + 2
    assert safe.count("<") <= 2 * html_caps.MAX_ELEMENTS + 10  # no amplification
    if "deep" in HOSTILE[name][-10:] and "unterminated" not in name:
        assert "deep" in safe  # the text is kept, only the tags beyond the cap go
    assert "Content truncated:" in safe


def test_the_size_cap_cuts_and_says_so():
    html = "<p>" + "a" * (html_caps.MAX_HTML_CHARS + 10) + "</p><p>tail</p>"
    safe = sanitize_html(html)
    assert "tail" not in safe
    assert "Content truncated: only the first 1,000,000 characters" in safe


def test_ordinary_mail_passes_untouched():
    html = (
        "<table><tr><td><table><tr><td><div><p>Hello <b><i>Anna</i></b>,</p>"
        "<ul><li>one<li>two</ul><p>a<p>b</td></tr></table></td></tr></table>"
    )
    capped = html_caps.html_cap(html)
    assert capped.cuts == []
    assert capped.html == html
    assert "Content truncated" not in sanitize_html(html)


def test_depth_beyond_the_cap_is_flattened_and_the_rest_keeps_its_structure():
    html = "<div>" * 300 + "inner" + "</div>" * 300 + "<p>after</p><ul><li>item</li></ul>"
    capped = html_caps.html_cap(html, max_depth=50)
    assert capped.html.count("<div>") == 50 and capped.html.count("</div>") == 50
    assert capped.html.endswith("<p>after</p><ul><li>item</li></ul>")
    assert capped.cuts == ["elements nested deeper than 50 levels were flattened"]


def test_a_quoted_gt_does_not_end_a_tag_but_a_quote_inside_a_value_does_not_open_one():
    # Both would let markup that the browser reads as tags pass uncounted.
    html = '<div title="a > b">x</div><div a=x"y>' + "<div>" * 500 + "z"
    capped = html_caps.html_cap(html, max_depth=20)
    assert capped.html.count("<div>") <= 20
    assert '<div title="a > b">x</div>' in capped.html


def test_the_text_conversion_is_capped_too():
    started = time.perf_counter()
    assert "deep" in html_to_text(HOSTILE["nested divs"])
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("element", ["title", "textarea", "style", "xmp", "iframe"])
def test_markup_after_a_raw_text_element_is_counted_as_the_browser_reads_it(element):
    # The quote is text inside <title>: the <div>s after </title> are real and must be counted.
    html = f'<{element}><a b="</{element}>' + "<div>" * 500 + 'x">'
    capped = html_caps.html_cap(html, max_depth=20)
    assert capped.html.count("<div>") <= 20
    # Tags inside the raw text are text: not cut, not counted.
    inside = f"<{element}>" + "<div>" * 50 + f"</{element}><p>after</p>"
    assert html_caps.html_cap(inside, max_depth=20).html == inside


TAG_SOUP_TAGS = [
    "div", "p", "b", "i", "font", "a", "span", "table", "tbody", "tr", "td", "th", "ul", "ol",
    "li", "dl", "dt", "dd", "blockquote", "pre", "h1", "select", "option", "caption", "em",
    "h2", "button", "form", "object", "template", "svg", "math", "nobr", "code", "label",
    "center", "thead", "colgroup", "optgroup", "marquee", "section",
]  # fmt: skip
_START = st.sampled_from(TAG_SOUP_TAGS).map(lambda t: f"<{t}>")
TAG_SOUP_PIECES = st.one_of(
    # Start tags weigh most, so that the soup gets deep.
    *[_START] * 8,
    st.sampled_from(TAG_SOUP_TAGS).map(lambda t: f"</{t}>"),
    st.sampled_from(TAG_SOUP_TAGS).map(lambda t: f"<{t}/>"),
    st.sampled_from(TAG_SOUP_TAGS).map(lambda t: f'<{t} title="a > b">'),
    st.sampled_from(TAG_SOUP_TAGS).map(lambda t: f'<{t} a=x"y>'),
    st.sampled_from(["x", " ", "<br>", "<!-- c -->", "<!-->", "<img>", "<hr>", "x<y>"]),
    st.sampled_from(["<title>t</title>", "<textarea><div></textarea>", "<style><p></style>"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(TAG_SOUP_PIECES, min_size=100, max_size=400))
def test_the_tree_stays_within_twice_the_caps(pieces):
    """Whatever the tag soup, the browser-grade parser's tree stays shallow.

    The pre-pass follows the tree builder's rules where they close elements (scopes, special
    elements, the adoption agency) but not every corner of them (misnested <a> inside <select>
    inside <caption>…): what it misses is bounded, never growing with the length of the soup,
    which is what keeps nh3's time linear.
    """
    html = "".join(pieces * 5)  # repeated: a leak that compounds would show
    capped = html_caps.html_cap(html, max_depth=12, max_formatting=3)
    tree = nh3.clean(capped.html, tags=set(TAG_SOUP_TAGS), attributes={}, strip_comments=True)
    assert _depth(tree) <= 2 * (12 + 3), (html, capped.html, tree)
