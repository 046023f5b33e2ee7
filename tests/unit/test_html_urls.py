"""Remote images in received HTML are blocked however the URL is spelled (WHATWG URL rules).

The spellings are generated: a browser strips leading/trailing C0 controls and spaces and removes
tabs and newlines anywhere, and the HTML parser decodes entities, so every such variant of an
``http(s)`` URL must be read as remote, and every scheme-less one as relative (dropped).
"""

import html as html_module
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from chatter.content import sanitize_email_html
from chatter.html_urls import url_absolute, url_scheme

HOST = "pixel.test"
C0_OR_SPACE = [chr(code) for code in range(0x21)]
TAB_OR_NEWLINE = ["\t", "\n", "\r"]


def _src_values(html: str) -> list[str]:
    return re.findall(r'\ssrc="([^"]*)"', html)


def _entities(text: str, picks: list[bool]) -> str:
    """Some characters written as numeric entities, as a sender may."""
    return "".join(
        f"&#x{ord(c):x};" if pick else html_module.escape(c, quote=True)
        for c, pick in zip(text, picks + [False] * len(text), strict=False)
    )


@st.composite
def remote_spellings(draw) -> tuple[str, str]:
    """(attribute value as written in the HTML, what the browser fetches)."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "hTtPs"]))
    slashes = draw(st.sampled_from(["//", "/", "\\\\", "/\\", "\\/", ""]))
    url = f"{scheme}:{slashes}{HOST}/p.png"
    chars = list(url)
    for _ in range(draw(st.integers(0, 3))):  # tabs and newlines anywhere
        chars.insert(draw(st.integers(0, len(chars))), draw(st.sampled_from(TAB_OR_NEWLINE)))
    lead = "".join(draw(st.lists(st.sampled_from(C0_OR_SPACE), max_size=3)))
    trail = "".join(draw(st.lists(st.sampled_from(C0_OR_SPACE), max_size=3)))
    lead = lead.replace("\x00", "")  # the HTML parser turns NUL into U+FFFD (then relative)
    trail = trail.replace("\x00", "")
    written = lead + "".join(chars) + trail
    picks = draw(st.lists(st.booleans(), max_size=len(written)))
    return _entities(written, picks), url


@st.composite
def relative_spellings(draw) -> str:
    start = draw(st.sampled_from(["//", "\\\\", "/\\", "\\/", "/", "", "./", "../", "?", "#"]))
    rest = draw(st.sampled_from([HOST + "/p.png", "admin/logout/", "p.png", "inbound/1/raw/"]))
    value = start + rest
    chars = list(value)
    for _ in range(draw(st.integers(0, 2))):
        chars.insert(draw(st.integers(0, len(chars))), draw(st.sampled_from(TAB_OR_NEWLINE)))
    return _entities(" " + "".join(chars), draw(st.lists(st.booleans(), max_size=30)))


@settings(max_examples=300, deadline=None)
@given(remote_spellings())
def test_every_spelling_of_a_remote_image_is_blocked(spelling):
    written, url = spelling
    html = f'<p>hi</p><img src="{written}" alt="pixel">'
    safe, blocked = sanitize_email_html(html)
    assert blocked, written
    assert _src_values(safe) == []
    assert 'alt="pixel"' in safe  # the reader still sees what was there
    # Asked for, the image loads from the host the browser would read, written unambiguously
    # ("http:/host" would be a path on our own site when the page is http).
    shown, _ = sanitize_email_html(html, allow_remote_images=True)
    assert _src_values(shown) == [f"{url.split(':')[0].lower()}://{HOST}/p.png"]


@settings(max_examples=200, deadline=None)
@given(relative_spellings())
def test_relative_image_urls_are_dropped_even_when_images_are_allowed(written):
    html = f'<img src="{written}" alt="x"><a href="{written}">link</a>'
    for allow in (False, True):
        safe, _ = sanitize_email_html(html, allow_remote_images=allow)
        assert "src=" not in safe and "href=" not in safe, (written, safe)


def test_other_ways_to_load_a_url_do_not_survive():
    url = f"http://{HOST}/p.png"
    html = (
        f'<img srcset="{url} 1x, {url} 2x"><picture><source srcset="{url}"></picture>'
        f'<div style="background:url({url})">s</div><style>p{{background:url(//{HOST}/s)}}</style>'
        f'<table background="{url}"><tr><td background="{url}">c</td></tr></table>'
        f'<body background="{url}"><svg><image href="{url}"/><use xlink:href="{url}#a"/></svg>'
        f'<image src="{url}"><video poster="{url}" src="{url}"></video><audio src="{url}"></audio>'
        f'<input type="image" src="{url}"><link rel="stylesheet" href="{url}">'
        f'<meta http-equiv="refresh" content="0;url={url}"><base href="http://{HOST}/">'
        f'<object data="{url}"></object><embed src="{url}"><iframe src="{url}"></iframe>'
        f'<blockquote cite="{url}">q</blockquote><a ping="{url}" href="https://ok.test/">ok</a>'
    )
    safe, blocked = sanitize_email_html(html)
    assert HOST not in safe, safe
    assert blocked  # <image> is parsed as <img>: a remote image the reader may ask for
    assert 'href="https://ok.test/"' in safe


def test_links_keep_http_https_and_mailto_only():
    html = (
        '<a href=" https://ok.test/a">1</a><a href="mailto:a@b.test">2</a>'
        '<a href="jav&#x09;ascript:alert(1)">3</a><a href="data:text/html,x">4</a>'
        '<a href="cid:x@y">5</a><a href="file:///etc/passwd">6</a><a href="/admin/">7</a>'
    )
    safe, _ = sanitize_email_html(html)
    assert re.findall(r'href="([^"]*)"', safe) == ["https://ok.test/a", "mailto:a@b.test"]


def test_inline_cid_images_are_served_from_our_attachment_url():
    html = (
        '<img src=" cid:&lt;logo@x&gt;"><img src="CID:photo@y"><img src="data:image/png;base64,AA">'
    )
    safe, blocked = sanitize_email_html(html, cid_url=lambda cid: f"/inbound/7/cid/{cid}/")
    assert _src_values(safe) == ["/inbound/7/cid/logo@x/", "/inbound/7/cid/photo@y/"]
    assert not blocked


def test_the_scheme_is_read_as_the_url_standard_says():
    assert url_scheme(" \x01h\tt\ntp\r:x") == "http"
    assert url_scheme("\u212aalendar:x") is None  # Kelvin sign is not an ASCII letter
    assert url_scheme("1http://x") is None
    assert url_scheme("//x") is None and url_scheme("\\\\x") is None
    assert url_scheme("mailto:a@b") == "mailto"


def test_absolute_urls_are_written_with_their_host():
    assert url_absolute("http:/host/x") == "http://host/x"
    assert url_absolute(" https:\\\\host\\x") == "https://host\\x"
    assert url_absolute("http:///") is None and url_absolute("//host/x") is None
    assert url_absolute("ftp://host/x") is None
