"""What users type becomes safe HTML; HTML from elsewhere loses anything that could run."""

from chatter.content import sanitize_html, text_to_html


def test_typed_text_is_escaped_not_interpreted():
    html = text_to_html('<script>alert("x")</script> & <b>bold</b>')
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "&amp;" in html


def test_paragraphs_line_breaks_and_links():
    html = text_to_html("Hello\nsecond line\n\nSee https://example.com/a?b=1&c=2.")
    assert html.startswith("<p>Hello<br>second line</p><p>")
    assert '<a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer">' in html
    # The sentence's full stop is not part of the link.
    assert html.endswith("</a>.</p>")


def test_blank_text_gives_empty_body():
    assert text_to_html("  \r\n ") == ""


def test_sanitize_drops_scripts_handlers_and_dangerous_urls():
    dirty = (
        '<p onclick="steal()">Hi<script>alert(1)</script>'
        '<a href="javascript:alert(1)">x</a><img src="data:image/png;base64,AAAA">'
        '<style>body{display:none}</style><iframe src="https://evil.test"></iframe></p>'
    )
    clean = sanitize_html(dirty)
    for bad in ("onclick", "<script", "javascript:", "data:", "<style", "<iframe"):
        assert bad not in clean, bad
    assert clean.startswith("<p>Hi")


def test_sanitize_keeps_formatting_links_and_cid_images():
    html = sanitize_html(
        '<p><strong>Total</strong> <a href="https://shop.test">shop</a></p>'
        '<img src="cid:logo@x" alt="logo"><table><tr><td>1</td></tr></table>'
    )
    assert "<strong>Total</strong>" in html
    assert 'href="https://shop.test"' in html
    assert 'src="cid:logo@x"' in html
    assert "<td>1</td>" in html


def test_own_content_keeps_only_absolute_links_and_images():
    html = sanitize_html(
        '<a href=" https://shop.test/a">a</a><a href="/admin/">b</a><a href="//evil.test/">c</a>'
        '<a href="java\tscript:alert(1)">d</a><img src="https://cdn.test/logo.png">'
        '<img src="/admin/logout/"><img src="\\\\evil.test\\x.png">'
    )
    assert 'href="https://shop.test/a"' in html
    assert html.count("href=") == 1 and html.count("src=") == 1
    assert 'src="https://cdn.test/logo.png"' in html
