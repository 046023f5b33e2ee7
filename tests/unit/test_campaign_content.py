"""Campaign mail content without a database: the text part, the token, the RFC 8058 headers."""

from campaigns import content
from chatter.html_text import html_to_text


def test_plain_text_keeps_paragraphs_lists_and_writes_links_out():
    html = (
        "<h1>Spring &amp; summer</h1><p>Hello <b>Alice</b>,<br>our catalogue is out.</p>"
        '<ul><li>Chairs</li><li>Desks</li></ul><p><a href="https://shop.test/c">See it</a></p>'
        "<script>alert(1)</script>"
    )
    assert html_to_text(html) == (
        "Spring & summer\n\nHello Alice,\nour catalogue is out.\n\n- Chairs\n- Desks\n\n"
        "See it (https://shop.test/c)"
    )


def test_a_link_whose_text_is_its_address_is_written_once():
    html = '<p><a href="https://shop.test">https://shop.test</a></p>'
    assert html_to_text(html) == "https://shop.test"


def test_token_round_trip_and_tampering_is_refused():
    token = content.unsubscribe_token(campaign_id=12, contact_id=345)
    assert content.unsubscribe_token_read(token) == (12, 345)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert content.unsubscribe_token_read(tampered) is None
    assert content.unsubscribe_token_read("12:345") is None
    # Someone else's numbers cannot be guessed into a token.
    other = content.unsubscribe_token(campaign_id=12, contact_id=346)
    assert other != token


def test_headers_follow_rfc_8058():
    headers = content.unsubscribe_headers(
        one_click_url="https://mail.example.com/campaigns/unsubscribe/t/one-click/",
        mailto=content.unsubscribe_mailto(address="unsubscribe@example.com", token="t:1"),
    )
    assert headers["List-Unsubscribe"] == (
        "<https://mail.example.com/campaigns/unsubscribe/t/one-click/>, "
        "<mailto:unsubscribe@example.com?subject=unsubscribe%20t%3A1>"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["Precedence"] == "list"
