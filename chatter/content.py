"""Message bodies: what users type (plain text) and HTML from elsewhere, made safe to show.

Every body stored on a ``Message`` has been through one of these two functions, so templates may
mark it safe.
"""

import re
from html import unescape

import nh3
from django.utils.html import escape

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
# cid: lets inline images of inbound mail point at their attachment; data: and javascript: never.
URL_SCHEMES = {"http", "https", "mailto", "cid"}

_URL = re.compile(r"\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_BLOCK_END = re.compile(r"<(?:br|/p|/div|/li|/tr|/h[1-6])\b[^>]*>", re.IGNORECASE)


def sanitize_html(html: str) -> str:
    """Keep the formatting of untrusted HTML and drop anything that could run or track."""
    return nh3.clean(
        html or "",
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


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


def html_to_text(html: str) -> str:
    """A plain-text preview of a stored body (for lists and the inbox)."""
    spaced = _BLOCK_END.sub(" ", html or "")
    return re.sub(r"\s+", " ", unescape(nh3.clean(spaced, tags=set()))).strip()


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


def _is_remote(url: str) -> bool:
    return url.lower().startswith(("http:", "https:", "//"))


def sanitize_email_html(
    html: str, *, cid_url=None, allow_remote_images: bool = False
) -> tuple[str, bool]:
    """Inbound HTML → safe HTML; returns (html, whether remote images were blocked).

    ``cid_url(content_id)`` gives the app URL of an inline image stored as an attachment
    (``cid:`` links are rewritten to it); remote images keep their ``alt`` text but lose their
    ``src`` unless ``allow_remote_images``.
    """
    blocked = False

    def keep(tag: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if tag == "img" and attribute == "src":
            if value.lower().startswith("cid:"):
                return cid_url(value[4:].strip("<>")) if cid_url else None
            if _is_remote(value) and not allow_remote_images:
                blocked = True
                return None
        elif value.lower().startswith("cid:"):
            return None
        return value

    cleaned = nh3.clean(
        html or "",
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        attribute_filter=keep,
    )
    return fold_quoted_html(cleaned), blocked


def _details(inner: str) -> str:
    return f"<details><summary>{QUOTE_SUMMARY}</summary>{inner}</details>"


def fold_quoted_html(html: str) -> str:
    """Fold the quoted history (from the first ``<blockquote>`` on) behind a toggle."""
    match = _HTML_QUOTE_START.search(html)
    if not match or not html[: match.start()].strip():
        return html  # nothing but quote: show it as it is
    head, quote = html[: match.start()], html[match.start() :]
    # Cutting may split an element; a second pass through the sanitiser closes what is open.
    return sanitize_html(head + _details(quote))


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
