"""Pure helpers for campaign mail: the plain-text part, the footer, the unsubscribe token.

No database here, so they are tested without one.
"""

import re
from html import unescape
from urllib.parse import quote

import nh3
from django.core import signing

UNSUBSCRIBE_SALT = "campaigns.unsubscribe"

_BLOCK_BREAK = re.compile(r"<(?:/p|/div|/h[1-6]|/ul|/ol|/table|/blockquote)\s*>", re.IGNORECASE)
_LINE_BREAK = re.compile(r"<(?:br\s*/?|/li|/tr)\s*>", re.IGNORECASE)
_LIST_ITEM = re.compile(r"<li\b[^>]*>", re.IGNORECASE)
_LINK = re.compile(
    r"<a\b[^>]*\bhref\s*=\s*([\"'])(?P<href>[^\"']*)\1[^>]*>(?P<text>.*?)</a\s*>",
    re.IGNORECASE | re.DOTALL,
)
_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def html_to_plain(html: str) -> str:
    """The text/plain alternative of an HTML body: paragraphs kept, links written out.

    Mail clients that show only text (and spam filters that compare both parts) get the same
    content as the HTML readers.
    """
    text = _DROP.sub("", html or "")

    def link(match: re.Match) -> str:
        href, label = match.group("href"), match.group("text")
        label_text = nh3.clean(label, tags=set()).strip()
        if not href or href.startswith("#") or unescape(label_text) == unescape(href):
            return label
        return f"{label} ({href})"

    text = _LINK.sub(link, text)
    text = _LIST_ITEM.sub("- ", text)
    text = _BLOCK_BREAK.sub("\n\n", text)
    text = _LINE_BREAK.sub("\n", text)
    text = unescape(nh3.clean(text, tags=set()))
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def unsubscribe_token(*, campaign_id: int, contact_id: int) -> str:
    """A signed token naming who unsubscribes from which campaign's lists.

    Signed with the secret key, so nobody can unsubscribe someone else by changing a number;
    it does not expire: an unsubscribe link must keep working for as long as the mail is kept.
    """
    return signing.dumps([campaign_id, contact_id], salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_token_read(token: str) -> tuple[int, int] | None:
    """(campaign id, contact id), or None for a token that was altered or is not ours."""
    try:
        campaign_id, contact_id = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(campaign_id, int) or not isinstance(contact_id, int):
        return None
    return campaign_id, contact_id


def unsubscribe_headers(*, one_click_url: str, mailto: str) -> dict[str, str]:
    """RFC 2369 List-Unsubscribe with the RFC 8058 one-click POST, plus Precedence: list.

    RFC 8058 §3.1: the header must hold an HTTPS URI that accepts the POST; the mailto is for
    clients that only know RFC 2369. The footer's page link is not in the header: a GET there
    only shows a confirmation page (RFC 8058 §4: anti-spam scanners fetch links).
    """
    return {
        "List-Unsubscribe": f"<{one_click_url}>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Precedence": "list",
        # Keeps Exchange from answering with out-of-office replies to a newsletter.
        "X-Auto-Response-Suppress": "OOF",
    }


def unsubscribe_mailto(*, address: str, token: str) -> str:
    return f"mailto:{address}?subject={quote('unsubscribe ' + token)}"


def footer_html(*, page_url: str) -> str:
    return (
        '<hr><p style="font-size:12px;color:#6b7280">You receive this mail because you are on '
        f'one of our mailing lists. <a href="{page_url}">Unsubscribe</a></p>'
    )


def footer_text(*, page_url: str) -> str:
    return (
        "--\nYou receive this mail because you are on one of our mailing lists.\n"
        f"Unsubscribe: {page_url}"
    )
