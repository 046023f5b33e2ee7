"""Pure helpers for campaign mail: the footer and the unsubscribe token.

No database here, so they are tested without one.
"""

from urllib.parse import quote

from django.core import signing

UNSUBSCRIBE_SALT = "campaigns.unsubscribe"


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
