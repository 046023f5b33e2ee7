"""HTML → plain text, the one conversion of the product.

Used for the text part of every mail we send (chatter notifications, campaigns) and to read the
words of a bounce. Mail readers that show only text, and spam filters that compare both parts,
get the same content as HTML readers: paragraphs stay apart by a blank line, line breaks and list
items start a line, links are written out after their text, quoted replies get ``> ``.

The markup goes through the hard caps and nh3 first, so the walk below reads well-formed HTML of
bounded size (the standard library's parser is only linear on well-formed input).
"""

import re
from html.parser import HTMLParser

import nh3

from .html_caps import html_cap

# Blocks separated by a blank line, and blocks that only start a new line (mail clients write
# one <div> per line, and <div><br></div> for a blank line).
_PARAGRAPH = frozenset(
    "address article aside blockquote details dl fieldset figure footer form h1 h2 h3 h4 h5 h6 "
    "header hr main nav ol p pre section table ul".split()
)
_LINE = frozenset("dd div dt li tr caption figcaption".split())
_CELL = frozenset({"td", "th"})
_TEXT_TAGS = _PARAGRAPH | _LINE | _CELL | {"a", "br", "img", "tbody", "thead", "tfoot"}
# Content that is not text for a reader: the toggle label of a folded quote is a button.
_NOT_TEXT = {"script", "style", "title", "summary", "head", "template", "noscript"}
_SPACES = re.compile(r"\s+")


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: str | None = None  # None: no text on the current line yet
        self.pending = 0  # newlines owed before the next text
        self.pending_quote = 0  # quote depth of the text before those newlines
        self.quote = 0
        self.pre = 0
        self.lists: list[list] = []  # per open list: [ordered, next number]
        self.links: list[tuple[str, list[str]]] = []

    # --- output -----------------------------------------------------------------------------
    def _break(self, count: int) -> None:
        if self.lines or self.line is not None:
            if not self.pending:
                self.pending_quote = self.quote
            self.pending = max(self.pending, count)

    def _flush(self) -> None:
        if self.pending and self.line is not None:
            self.lines.append(self.line.rstrip())
            blank_quote = min(self.pending_quote, self.quote)
            self.lines.extend([("> " * blank_quote).rstrip()] * (self.pending - 1))
            self.line = None
        self.pending = 0

    def _write(self, text: str, *, indent: bool = False) -> None:
        if not self.pre and not indent and (self.line is None or self.pending):
            text = text.lstrip()  # a new line does not start with the space between two tags
        if not text:
            return
        self._flush()
        if self.line is None:
            self.line = "> " * self.quote
        elif not self.pre and self.line.endswith(" ") and text.startswith(" "):
            text = text[1:]
        self.line += text
        for links_text in self.links:
            links_text[1].append(text)

    def text(self) -> str:
        if self.line is not None:
            self.lines.append(self.line.rstrip())
        return "\n".join(self.lines).strip("\n")

    # --- parser events ----------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs) -> None:
        attributes = dict(attrs)
        if tag == "br":
            self._flush_br()
        elif tag in ("ul", "ol"):
            self._break(1 if self.lists else 2)
            self.lists.append([tag == "ol", 1])
        elif tag == "li":
            self._break(1)
            indent = "  " * max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0]:
                self._write(f"{indent}{self.lists[-1][1]}. ", indent=True)
                self.lists[-1][1] += 1
            else:
                self._write(f"{indent}- ", indent=True)
        elif tag in _PARAGRAPH:
            self._break(2)
            if tag == "blockquote":
                self.quote += 1
            elif tag == "pre":
                self.pre += 1
            elif tag == "hr":
                self._write("----")
                self._break(2)
        elif tag in _LINE:
            self._break(1)
        elif tag in _CELL and self.line is not None and not self.pending:
            self._write(" ")
        elif tag == "a":
            self.links.append((attributes.get("href") or "", []))
        elif tag == "img" and attributes.get("alt"):
            self._write(f"[{attributes['alt'].strip()}]")

    def _flush_br(self) -> None:
        # Unlike the breaks of blocks, which merge, every <br> adds one: "a<br><br>b" has a
        # blank line. A break before any text is dropped.
        if self.line is None:
            return
        if not self.pending:
            self.pending_quote = self.quote
        self.pending += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._break(1 if self.lists else 2)
        elif tag in _PARAGRAPH:
            self._break(2)
            if tag == "blockquote":
                self.quote = max(self.quote - 1, 0)
            elif tag == "pre":
                self.pre = max(self.pre - 1, 0)
        elif tag in _LINE:
            self._break(1)
        elif tag == "a" and self.links:
            href, label = self.links.pop()
            label_text = _SPACES.sub(" ", "".join(label)).strip()
            written_out = href in (label_text, f"mailto:{label_text}")
            if href and not href.startswith("#") and not written_out:
                self._write(f" ({href})" if label_text else href)

    def handle_data(self, data: str) -> None:
        if self.pre:
            first, *rest = data.replace("\r\n", "\n").split("\n")
            self._write(first)
            for piece in rest:
                self._flush_br()
                self._write(piece)
        else:
            self._write(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body (see the module docstring for what is kept)."""
    if not html or not html.strip():
        return ""
    well_formed = nh3.clean(
        html_cap(html).html,
        tags=_TEXT_TAGS,
        clean_content_tags=_NOT_TEXT,
        attributes={"a": {"href"}, "img": {"alt"}},
        link_rel=None,
        strip_comments=True,
    )
    writer = _TextWriter()
    writer.feed(well_formed)
    writer.close()
    return writer.text()
