"""Message bodies: what users type (plain text) and HTML from elsewhere, made safe to show.

Every body stored on a ``Message`` has been through one of these two functions, so templates may
mark it safe.
"""

import re

import nh3
from django.utils.html import escape

from .html_caps import html_cap
from .html_urls import url_absolute, url_clean, url_scheme

# What a message body may contain: text formatting, links, lists, quotes, tables and images.
# No script, style, form or event attribute survives; links get rel="noopener noreferrer".
ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "details",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "small",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "abbr": {"title"},
}
# Only these schemes survive in a link; an image loads only from these (``cid:`` is an inline
# image of the same mail). data:, javascript:, file: and relative URLs never survive.
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
REMOTE_IMAGE_SCHEMES = frozenset({"http", "https"})
URL_SCHEMES = LINK_SCHEMES | {"cid"}
# HTML attributes whose value is a URL the browser may load or follow. Only href and src are
# allowed above; the others are listed so that allowing one later cannot open a way around the
# URL rule (srcset, background, poster… are dropped by the allowlist today).
URL_ATTRIBUTES = frozenset(
    "action background cite codebase data dynsrc formaction href icon itemtype longdesc lowsrc "
    "manifest ping poster src srcset usemap xlink:href".split()
)

_URL = re.compile(r"\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def _truncation_note(cuts: list[str]) -> str:
    return f"<p><em>Content truncated: {escape('; '.join(cuts))}.</em></p>" if cuts else ""


def _clean(html: str, *, link_rel: str, attribute_filter) -> tuple[str, list[str]]:
    """nh3 with our allowlist, on markup that went through the hard caps first."""
    capped = html_cap(html or "")
    cleaned = nh3.clean(
        capped.html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=link_rel,
        strip_comments=True,
        attribute_filter=attribute_filter,
    )
    return cleaned, capped.cuts


def _own_url(tag: str, attribute: str, value: str) -> str | None:
    """Our own content (composer, campaigns, admin): absolute links and images only."""
    if attribute not in URL_ATTRIBUTES:
        return value
    scheme = url_scheme(value)
    if tag == "img" and attribute == "src":
        return url_clean(value) if scheme == "cid" else url_absolute(value)
    if tag == "a" and attribute == "href":
        return _link(value, scheme)
    return None


def _link(value: str, scheme: str | None) -> str | None:
    return url_clean(value) if scheme == "mailto" else url_absolute(value)


def sanitize_html(html: str) -> str:
    """Keep the formatting of untrusted HTML and drop anything that could run or track."""
    cleaned, cuts = _clean(html, link_rel="noopener noreferrer", attribute_filter=_own_url)
    return cleaned + _truncation_note(cuts)


def _linkify(escaped: str) -> str:
    # Runs on already-escaped text: "&" became "&amp;" and quotes are escaped, so the match
    # cannot break out of the attribute.
    return _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


def text_to_html(text: str) -> str:
    """Plain text typed in the composer → HTML: escaped, paragraphs, line breaks, links."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return ""
    paragraphs = []
    for block in _PARAGRAPH_BREAK.split(text):
        lines = [_linkify(escape(line)) for line in block.split("\n")]
        paragraphs.append("<p>" + "<br>".join(lines) + "</p>")
    # A final pass through the sanitiser costs little and guarantees the invariant above.
    return sanitize_html("".join(paragraphs))


# --- inbound mail ---------------------------------------------------------------------------------
# Mail from outside is untrusted twice over: it may try to run script (nh3 drops it) and it may
# load remote images that tell the sender when and where it was read (blocked unless asked).

QUOTE_SUMMARY = "Show quoted text"
_QUOTE_INTRO = re.compile(
    r"^(On .{0,200}wrote:|Le .{0,200}a écrit ?:|Am .{0,200}schrieb .{0,100}:|"
    r"-{2,} ?Original Message ?-{2,}|From: .{1,200})$",
    re.IGNORECASE,
)
_HTML_QUOTE_START = re.compile(r"<blockquote\b", re.IGNORECASE)


RECEIVED_LINK_REL = "noopener noreferrer nofollow"


def sanitize_email_html(
    html: str, *, cid_url=None, allow_remote_images: bool = False
) -> tuple[str, bool]:
    """Inbound HTML → safe HTML; returns (html, whether remote images were blocked).

    ``cid_url(content_id)`` gives the app URL of an inline image stored as an attachment
    (``cid:`` images are rewritten to it; without it they are dropped). An ``http(s)`` image
    keeps its ``alt`` text but loses its ``src`` unless ``allow_remote_images``. Every other
    image URL is dropped, relative ones included (they would make the reader's browser request
    our own pages, or another host for ``//host``); links keep only http, https and mailto.
    """
    blocked = False

    def keep(tag: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if attribute not in URL_ATTRIBUTES:
            return value
        scheme = url_scheme(value)
        if tag == "a" and attribute == "href":
            return _link(value, scheme)
        if tag != "img" or attribute != "src":
            return None
        if scheme == "cid":
            return cid_url(url_clean(value)[4:].strip("<>")) if cid_url else None
        if scheme in REMOTE_IMAGE_SCHEMES:
            if allow_remote_images:
                return url_absolute(value)
            blocked = True
        return None

    cleaned, cuts = _clean(html, link_rel=RECEIVED_LINK_REL, attribute_filter=keep)
    return fold_quoted_html(cleaned) + _truncation_note(cuts), blocked


def _details(inner: str) -> str:
    return f"<details><summary>{QUOTE_SUMMARY}</summary>{inner}</details>"


def fold_quoted_html(html: str) -> str:
    """Fold the quoted history (from the first ``<blockquote>`` on) behind a toggle.

    Takes HTML that is already sanitised: cutting may split an element, so a second nh3 pass
    closes what is open, with no URL rule (the first pass chose the URLs, among them our own
    relative inline-image URLs, which the rule for received mail would drop).
    """
    match = _HTML_QUOTE_START.search(html)
    if not match or not html[: match.start()].strip():
        return html  # nothing but quote: show it as it is
    head, quote = html[: match.start()], html[match.start() :]
    return nh3.clean(
        head + _details(quote),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel=RECEIVED_LINK_REL,
        strip_comments=True,
    )


def email_text_to_html(text: str) -> str:
    """A text/plain mail → HTML: escaped, links, and a trailing ``>`` quote folded away."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").rstrip()
    lines = text.split("\n")
    start = len(lines)
    # Walk back over the trailing block of quoted (or blank) lines.
    while start > 0 and (lines[start - 1].startswith(">") or not lines[start - 1].strip()):
        start -= 1
    if start < len(lines) and start > 0 and _QUOTE_INTRO.match(lines[start - 1].strip()):
        start -= 1
    has_quote = any(line.startswith(">") for line in lines[start:])
    if not has_quote or start == 0:
        return text_to_html(text)
    own = text_to_html("\n".join(lines[:start]))
    quoted = "\n".join(
        line[1:].removeprefix(" ") if line.startswith(">") else line for line in lines[start:]
    )
    return sanitize_html(own + _details("<blockquote>" + text_to_html(quoted) + "</blockquote>"))
