"""Hard caps on HTML before it reaches the sanitiser: size, nesting depth, open formatting.

nh3 (html5ever) builds a tree the way a browser does, and some of its steps walk the stack of
open elements for every tag ("has an element in scope"), so its time grows with tags × depth:
150,000 nested ``<div>`` (1.6 MB) took minutes. This pre-pass walks the markup once, in linear
time, and bounds what the tree builder will see:

- at most ``MAX_HTML_CHARS`` characters (the rest is cut);
- at most ``MAX_DEPTH`` open elements: deeper start tags (and their end tags) are dropped, their
  text stays, flattened into the element at the cap (Blink does the same past 512 levels);
- at most ``MAX_OPEN_FORMATTING`` active formatting elements (``<b>``, ``<font>``…): one that
  is left open stays active even after its parent closes, and the tree builder re-opens every
  active one, nested, before each new text (HTML §13.2.4.3, "reconstruct the active formatting
  elements"): 2,000 × ``<div><b id=N>x</div>`` (45 KB) made 2 million elements in 9 s;
- at most ``MAX_ELEMENTS`` elements in the tree, counting for every tag the active formatting
  elements it may re-open (16 open ``<b>`` and 250,000 ``<p>`` would make 4 million): past the
  budget every tag is dropped and the rest is text.

It only decides which tags pass; what passes is copied as written and nh3 still does the real
parsing, so the pre-pass cannot make anything unsafe. It must never count fewer open elements
than a browser would, so it reads tags as the HTML tokenizer does (quotes only count right
after ``=``), and it closes an element implicitly only where a browser certainly does (a
``<p>``, ``<li>``, ``<td>``… that is the current node). Hand-written because ``html.parser``
of Python 3.13.0 is quadratic on unterminated tags (``"<a" * 500_000`` does not finish in five
minutes).
"""

import re
from dataclasses import dataclass, field

MAX_HTML_CHARS = 1_000_000
MAX_DEPTH = 200
MAX_OPEN_FORMATTING = 16
MAX_ELEMENTS = 200_000

# HTML §13.1.2: void elements have no end tag and never hold children.
VOID = frozenset(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param "
    "source track wbr".split()
)
# HTML §13.2.4.3, the formatting elements that "reconstruct the active formatting elements" reopens.
FORMATTING = frozenset("a b big code em font i nobr s small strike strong tt u".split())
# Elements that put a marker in the list of active formatting elements: reconstruction stops at
# the last marker, and closing the element clears the entries after it (HTML §13.2.4.3).
MARKERS = frozenset("applet caption marquee object td template th".split())
# A start tag of one of these closes a <p> that is the current node (HTML §13.2.6.4.7). Not
# <table>: in quirks mode it does not.
_CLOSES_P = frozenset(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main menu nav ol p pre search "
    "section summary ul".split()
)
# HTML §13.2.4.2 "special" elements: an end tag for a non-special element never closes past
# one, and the adoption agency keeps everything from the first one above a formatting element.
SPECIAL = frozenset(
    "address applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form "
    "frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li link "
    "listing main marquee menu meta nav noembed noframes noscript object ol p param plaintext pre "
    "script search section select source style summary table tbody td template textarea tfoot th "
    "thead title tr track ul wbr xmp mi mo mn ms mtext annotation-xml foreignobject desc".split()
)
# "Has an element in scope" (HTML §13.2.4.2): the end tags that the "in body" rules list by name
# close nothing past these; table parts look only for the table scope; every other end tag
# ("any other end tag") closes nothing past a special element.
_SCOPE = frozenset("applet caption html table td th marquee object template".split())
_SCOPED_END = frozenset(
    "address article aside blockquote button center details dialog dir div dl fieldset "
    "figcaption figure footer header hgroup listing main menu nav ol pre search section summary "
    "ul form p li dd dt h1 h2 h3 h4 h5 h6 applet marquee object".split()
)
_TABLE_PARTS = frozenset("table tbody thead tfoot tr td th caption".split())
_EXTRA_SCOPE = {"p": frozenset({"button"}), "li": frozenset({"ol", "ul"})}
# A start tag of the key closes the current node when it is one of the values.
_P = frozenset({"p"})
_CLOSES_CURRENT = {
    "li": frozenset({"li", "p"}),
    "dt": frozenset({"dt", "dd", "p"}),
    "dd": frozenset({"dt", "dd", "p"}),
    "td": frozenset({"td", "th"}),
    "th": frozenset({"td", "th"}),
    "tr": frozenset({"td", "th", "tr"}),
    "option": frozenset({"option"}),
}

_IMPLIED = {
    ("table", "tr"): ("tbody",),
    ("table", "td"): ("tbody", "tr"),
    ("table", "th"): ("tbody", "tr"),
    ("tbody", "td"): ("tr",),
    ("thead", "td"): ("tr",),
    ("tfoot", "td"): ("tr",),
    ("tbody", "th"): ("tr",),
    ("thead", "th"): ("tr",),
    ("tfoot", "th"): ("tr",),
}

# Elements whose content the tokenizer reads as text up to their own end tag (HTML §13.2.5.2–.7):
# tags inside them are not tags, so they are neither counted nor cut. (noscript is not one: nh3
# parses with scripting off.) After <plaintext> everything is text.
RAW_TEXT = frozenset("iframe noembed noframes script style textarea title xmp".split())

_TAG_NAME = re.compile(r"<(/?)([A-Za-z][^\t\n\f\r />]*+)")
_SPACE = re.compile(r"[\t\n\f\r ]*+")
_BEFORE_NAME = re.compile(r"[\t\n\f\r /]*+")
_ATTRIBUTE_NAME = re.compile(r"[^\t\n\f\r />][^\t\n\f\r />=]*+")
_UNQUOTED = re.compile(r"[^\t\n\f\r >]*+")


@dataclass
class CappedHtml:
    html: str
    # What was cut, in words for the reader ("nesting deeper than 200 elements"…).
    cuts: list[str] = field(default_factory=list)


def _tag_end(html: str, pos: int) -> int | None:
    """Index after the ``>`` that ends a tag whose name ends at ``pos``; None at end of input.

    HTML §13.2.5.32–.40: attributes are separated by spaces or ``/``; a quote opens a value only
    right after ``=``; an unterminated quote or tag runs to the end of the input (and is dropped).
    """
    end = len(html)
    while True:
        pos = _BEFORE_NAME.match(html, pos).end()
        if pos >= end:
            return None
        if html[pos] == ">":
            return pos + 1
        pos = _ATTRIBUTE_NAME.match(html, pos).end()
        pos = _SPACE.match(html, pos).end()
        if pos >= end:
            return None
        if html[pos] != "=":
            continue  # ">" or "/" or the next attribute
        pos = _SPACE.match(html, pos + 1).end()
        if pos >= end:
            return None
        quote = html[pos]
        if quote in "\"'":
            close = html.find(quote, pos + 1)
            if close == -1:
                return None
            pos = close + 1
        elif quote != ">":
            pos = _UNQUOTED.match(html, pos).end()


def _markup_end(html: str, lt: int) -> int:
    """End of a comment, doctype, CDATA or processing instruction starting at ``lt``."""
    if html.startswith("<!--", lt):
        # "<!-->" and "<!--->" end at once (HTML §13.2.5.43); otherwise at "-->" or the end.
        close = html.find("-->", lt + 2)
    else:
        close = html.find(">", lt + 1)
    return len(html) if close == -1 else close + (3 if html.startswith("<!--", lt) else 1)


def _closes_to(stack: list[str], name: str) -> int | None:
    """Index in ``stack`` down to which the end tag ``name`` pops, None if it pops nothing.

    Never less than a browser keeps open: HTML §13.2.6.4.7 "any other end tag" stops at a
    special element, a special element's end tag at its scope, and a formatting element's end
    tag that has a special element above it runs the adoption agency, which moves elements but
    keeps as many open (so nothing is popped here).
    """
    if name in _TABLE_PARTS:
        # Honoured only inside a table (in body mode these end tags are ignored).
        boundaries = frozenset({"html", "template"})
        tables = [i for i, e in enumerate(stack) if e == "table"]
        if name != "table" and not tables:
            return None
    elif name in _SCOPED_END:
        boundaries = _SCOPE | _EXTRA_SCOPE.get(name, frozenset())
    else:
        boundaries = SPECIAL
    for index in range(len(stack) - 1, -1, -1):
        if stack[index] == name:
            if name in FORMATTING and any(e in SPECIAL for e in stack[index + 1 :]):
                return None
            if name in _TABLE_PARTS and name != "table" and tables[0] > index:
                return None
            return index
        if stack[index] in boundaries:
            return None
    return None


def _raw_text_end(html: str, name: str, pos: int) -> int:
    """Where the text of a raw-text element opened before ``pos`` ends: its end tag, or the end."""
    match = re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE | re.ASCII).search(html, pos)
    return match.start() if match else len(html)


def html_cap(
    html: str,
    *,
    max_chars: int = MAX_HTML_CHARS,
    max_depth: int = MAX_DEPTH,
    max_formatting: int = MAX_OPEN_FORMATTING,
    max_elements: int = MAX_ELEMENTS,
) -> CappedHtml:
    """The markup with comments dropped and the caps above applied, in one linear pass."""
    html = html or ""
    result = CappedHtml(html="")
    if len(html) > max_chars:
        result.cuts.append(f"only the first {max_chars:,} characters of the HTML are shown")
        html = html[:max_chars]
    out: list[str] = []
    stack: list[str] = []
    dropped: dict[str, int] = {}  # start tags dropped by a cap, by name, whose end is to come
    # The active formatting elements, per marker scope: entries live until their own end tag.
    scopes: list[list[str]] = [[]]
    too_deep = too_much_formatting = False
    elements = 0  # an upper bound of the elements the tree builder will make

    def pop() -> str:
        closed = stack.pop()
        if closed in MARKERS and len(scopes) > 1:
            scopes.pop()
        return closed

    pos, end = 0, len(html)
    while pos < end:
        lt = html.find("<", pos)
        if lt == -1:
            out.append(html[pos:])
            break
        out.append(html[pos:lt])
        match = _TAG_NAME.match(html, lt)
        if match is None:
            if html.startswith(("<!", "<?", "</"), lt):
                pos = _markup_end(html, lt)  # comments and declarations are not shown anyway
            else:
                out.append("<")  # a "<" that starts no tag is text
                pos = lt + 1
            continue
        tag_end = _tag_end(html, match.end())
        if tag_end is None:
            # The tag never ends: a browser drops it and everything after it (HTML §13.2.5.33).
            if end - lt > 1000:
                result.cuts.append(f"the last {end - lt:,} characters are one unterminated tag")
            break
        pos = tag_end
        name = match.group(2).lower()
        elements += 1 + len(scopes[-1])
        if elements > max_elements:
            if name in RAW_TEXT and not match.group(1):
                pos = _raw_text_end(html, name, pos)
            continue
        if match.group(1):  # an end tag
            if dropped.get(name):
                dropped[name] -= 1
                continue
            if name in FORMATTING and name in scopes[-1]:
                scopes[-1].reverse()  # the adoption agency closes the last one of that name
                scopes[-1].remove(name)
                scopes[-1].reverse()
            index = _closes_to(stack, name)
            if index is not None:
                while len(stack) > index:
                    pop()
                dropped.clear()  # closing an ancestor closes everything dropped below it
            out.append(html[lt:tag_end])
            continue
        if name in VOID or (name in _TABLE_PARTS and name != "table" and "table" not in stack):
            # Void elements hold nothing; table parts outside a table are ignored (HTML
            # §13.2.6.4.7): neither is an open element.
            out.append(html[lt:tag_end])
            continue
        closes = _CLOSES_CURRENT.get(name, _P if name in _CLOSES_P else None)
        while stack and closes and stack[-1] in closes:
            pop()
        # Rows and cells straight in a table get an implied <tbody> (and <tr>): count them.
        implied = _IMPLIED.get((stack[-1] if stack else "", name), ())
        deep = len(stack) + len(implied) >= max_depth
        styles = name in FORMATTING and len(scopes[-1]) >= max_formatting
        if deep or styles:
            too_deep |= deep
            too_much_formatting |= styles
            dropped[name] = dropped.get(name, 0) + 1
            if name in RAW_TEXT:
                pos = _raw_text_end(html, name, pos)  # its text would be read as markup
            continue
        stack.extend(implied)
        stack.append(name)
        if name in MARKERS:
            scopes.append([])
        elif name in FORMATTING:
            scopes[-1].append(name)
        out.append(html[lt:tag_end])
        if name == "plaintext":
            out.append(html[pos:])
            break
        if name in RAW_TEXT:
            text_end = _raw_text_end(html, name, pos)
            out.append(html[pos:text_end])
            pos = text_end
    if elements > max_elements:
        result.cuts.append(f"past {max_elements:,} elements the rest is shown as plain text")
    if too_deep:
        result.cuts.append(f"elements nested deeper than {max_depth} levels were flattened")
    if too_much_formatting:
        result.cuts.append(f"text styles left open beyond {max_formatting} were dropped")
    result.html = "".join(out)
    return result
