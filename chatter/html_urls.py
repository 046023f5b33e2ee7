"""What a URL in an HTML attribute points at, read the way a browser reads it.

A prefix test ("starts with http:") is fooled by every spelling a browser forgives: leading
spaces, a tab or newline inside the scheme, entities (the HTML parser has decoded them before we
see the value), ``//host``, ``\\\\host``, ``/\\host``. The WHATWG URL Standard's basic URL parser
says what a browser does, and only its first steps matter to decide where a URL goes:

1. strip leading and trailing C0 controls and spaces (U+0000–U+0020);
2. remove every ASCII tab and newline (U+0009, U+000A, U+000D), wherever they are;
3. a scheme is an ASCII letter followed by letters, digits, ``+``, ``-`` or ``.``, then ``:``;
   anything else is a relative URL, resolved against the page: ``//host`` and, for the
   special schemes, ``\\\\host`` and ``/\\host`` (a backslash counts as a slash) reach another
   host, and a path reaches our own pages.

So the rule is on the scheme, never on a prefix: no scheme means relative, and a relative URL
in mail from outside is never kept.
"""

import re

# "C0 control or space" (WHATWG Infra): U+0000 to U+0020.
_C0_OR_SPACE = "".join(chr(code) for code in range(0x21))
_TAB_OR_NEWLINE = re.compile("[\t\n\r]")
# ASCII only: Python's case-insensitive matching would take "K" (Kelvin sign) for "k".
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:", re.ASCII)


def url_clean(value: str) -> str:
    """The URL as the parser sees it after steps 1 and 2 above."""
    return _TAB_OR_NEWLINE.sub("", (value or "").strip(_C0_OR_SPACE))


def url_scheme(value: str) -> str | None:
    """The URL's scheme in lower case, or None when a browser would read it as relative."""
    match = _SCHEME.match(url_clean(value))
    return match.group(0)[:-1].lower() if match else None


def url_absolute(value: str) -> str | None:
    """An http(s) URL written so that every page reads it the same: ``scheme://host/…``.

    For a special scheme, ``http:/host/x`` and ``http:host/x`` are relative on an ``http`` page
    (they reach our own site) but absolute on an ``https`` one: the URL Standard's "special
    relative or authority state" depends on the page. Written out with ``//`` (the browser skips
    any run of ``/`` and ``\\`` before the host), the URL means one thing. None without a host.
    """
    cleaned = url_clean(value)
    scheme = url_scheme(cleaned)
    if scheme not in ("http", "https"):
        return None
    rest = cleaned[len(scheme) + 1 :].lstrip("/\\")
    if not rest or rest[0] in "?#@:":
        return None
    return f"{scheme}://{rest}"
