"""The one HTML → text conversion: paragraphs, lists, links, line breaks, quoted replies."""

import pytest

from chatter.html_text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            "<p>Hello Anna,</p><p>the printer is fixed.</p>",
            "Hello Anna,\n\nthe printer is fixed.",
        ),
        (
            "<p>Hello <b>Anna</b>,<br>the printer<br>\n is fixed.</p>",
            "Hello Anna,\nthe printer\nis fixed.",
        ),
        ("a<br><br>b<br>c", "a\n\nb\nc"),
        # Mail clients write one <div> per line and <div><br></div> for a blank line.
        (
            "<div>Hi,</div><div><br></div><div>see below.</div><div>Bye</div>",
            "Hi,\n\nsee below.\nBye",
        ),
        ("<h2>News</h2><p>x &amp; y&nbsp;z</p>", "News\n\nx & y z"),
        ("<ul><li>Chairs</li><li>Desks</li></ul><p>end</p>", "- Chairs\n- Desks\n\nend"),
        ("<ol><li>one<ul><li>inner</li></ul></li><li>two</li></ol>", "1. one\n  - inner\n2. two"),
        (
            '<p>See <a href="https://shop.test/c">the shop</a> or '
            '<a href="mailto:help@shop.test">help@shop.test</a>.</p>',
            "See the shop (https://shop.test/c) or help@shop.test.",
        ),
        ('<a href="https://shop.test">https://shop.test</a>', "https://shop.test"),
        ('<a href="javascript:alert(1)">click</a>', "click"),
        (
            "<p>Fixed.</p><blockquote><p>On Monday, Anna wrote:</p><p>Is it fixed?<br>Thanks</p>"
            "<blockquote><p>older</p></blockquote></blockquote><p>Bob</p>",
            "Fixed.\n\n> On Monday, Anna wrote:\n>\n> Is it fixed?\n> Thanks\n>\n> > older\n\nBob",
        ),
        (
            "<p>Reply</p><details><summary>Show quoted text</summary>"
            "<blockquote><p>old</p></blockquote></details>",
            "Reply\n\n> old",
        ),
        ("<pre>def f():\n    return 1</pre>", "def f():\n    return 1"),
        (
            "<table><tr><th>Item</th><th>Qty</th></tr><tr><td>Desk</td><td>2</td></tr></table>",
            "Item Qty\nDesk 2",
        ),
        ("<style>p{color:red}</style><script>x()</script><p>only this</p>", "only this"),
        ("", ""),
    ],
)
def test_html_to_text(html, text):
    assert html_to_text(html) == text
