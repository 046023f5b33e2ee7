"""Remote images of received HTML load nothing in a real Chromium, whatever their spelling.

A pixel server on loopback counts every request; a mail with many spellings of its URL (and of
relative URLs, which would reach our own pages) is received through the real listener, then the
record page and the mail's page are opened: zero hits. "Show images" then loads the http(s) ones,
which proves that the server and the spellings would have been reached.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chatter.models import Message
from inbound.models import InboundMail
from tests.support.chatter import StaffFactory
from tests.support.inbound import build_mail, send

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b"
)


class _Pixels(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.hits: list[str] = []
        super().__init__(("127.0.0.1", 0), _PixelHandler)


class _PixelHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        self.server.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("Content-Length", str(len(GIF)))
        self.end_headers()
        self.wfile.write(GIF)

    def log_message(self, *args):
        pass


@pytest.fixture
def pixels():
    server = _Pixels()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _spellings(host: str) -> dict[str, str]:
    """name → img src as written in the mail (the HTML parser decodes the entities)."""
    return {
        "plain": f"http://{host}/plain",
        "leading-space": f"   http://{host}/leading-space",
        "leading-tab": f"\thttp://{host}/leading-tab",
        "leading-c0": f"&#x1;&#x1f; https://{host}/leading-c0",
        "entity-scheme": f"&#104;&#x74;tp://{host}/entity-scheme",
        "tab-in-scheme": f"ht&Tab;tp://{host}/tab-in-scheme",
        "newline-in-scheme": f"h&#10;ttp&#13;://{host}/newline-in-scheme",
        "entity-colon": f"http&colon;//{host}/entity-colon",
        "upper-case": f"HTTP://{host}/upper-case",
        "one-slash": f"http:/{host}/one-slash",
        "no-slash": f"http:{host}/no-slash",
        "backslashes-after-scheme": f"http:\\\\{host}\\backslashes-after-scheme",
        "protocol-relative": f"//{host}/protocol-relative",
        "backslash-backslash": f"\\\\{host}/backslash-backslash",
        "slash-backslash": f"/\\{host}/slash-backslash",
        "tab-in-slashes": f"/&Tab;/{host}/tab-in-slashes",
    }


def _html(host: str) -> str:
    images = "".join(
        f'<p>{name}: <img src="{src}" alt="{name}"></p>' for name, src in _spellings(host).items()
    )
    url = f"http://{host}/other"
    return (
        "<p>Hello, here is our newsletter.</p>"
        + images
        + f'<img srcset="{url}-srcset 1x, {url}-srcset2 2x"><picture><source srcset="{url}-source">'
        f'<img alt="picture"></picture><div style="background-image:url({url}-style)">styled</div>'
        f"<style>body{{background:url({url}-sheet)}} p{{background:url(//{host}/sheet2)}}</style>"
        f'<table background="{url}-background"><tr><td background="{url}-td">cell</td></tr></table>'
        f'<svg width="10" height="10"><image href="{url}-svg" width="10" height="10"/></svg>'
        f'<image src="{url}-image-tag"><video poster="{url}-poster"></video>'
        f'<input type="image" src="{url}-input"><link rel="stylesheet" href="{url}-link">'
        f'<object data="{url}-object"></object><embed src="{url}-embed">'
        f'<iframe src="{url}-iframe"></iframe><audio src="{url}-audio"></audio>'
        f'<a href="https://example.test/" ping="{url}-ping">a link</a>'
        # Relative URLs would make the reader's browser request our own pages.
        '<img src="/admin/?tracked=root"><img src="tracked-relative.png">'
        '<img src="?tracked=query"><img src=" ./tracked-dot.png">'
        '<blockquote><p>Earlier mail</p><img src="/?tracked=quoted"></blockquote>'
    )


def test_remote_images_load_nothing_until_asked(
    mail_domain, inbound_listener, login_page, live_server, pixels, test_results_dir
):
    host = f"127.0.0.1:{pixels.server_address[1]}"
    listener = inbound_listener()
    send(listener.port, build_mail(html=_html(host), message_id="<pixels@customer.test>"))
    message = Message.objects.get(message_id="<pixels@customer.test>")
    row = InboundMail.objects.get()
    assert row.remote_images

    page = login_page(StaffFactory(password="staff-password"), "staff-password")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(live_server.url + message.record.get_absolute_url())
    page.wait_for_selector(f"#message-{message.pk} .message-body")
    assert "Hello, here is our newsletter." in page.inner_text(f"#message-{message.pk}")
    page.wait_for_load_state("networkidle")
    page.goto(f"{live_server.url}/inbound/mail/{row.pk}/")
    page.wait_for_selector(".inbound-body")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(test_results_dir / "remote-images-blocked.png"), full_page=True)

    assert pixels.hits == []
    assert [url for url in requested if host in url or "tracked" in url] == []
    assert page.locator("img[alt=leading-tab]").count() == 1  # the alt text stays

    # Asked for, the http(s) images load: the server and those spellings were reachable.
    page.click("#show-images")
    page.wait_for_selector(".inbound-body")
    page.wait_for_load_state("networkidle")
    loaded = {path.lstrip("/") for path in pixels.hits}
    assert {
        "plain",
        "leading-tab",
        "tab-in-scheme",
        "entity-scheme",
        "one-slash",
        "no-slash",
    } <= loaded
    # Relative ones are never shown, and nothing outside <img src> ever loads (<image> is
    # parsed as <img>).
    assert not loaded & {"protocol-relative", "backslash-backslash", "slash-backslash"}
    assert [path for path in loaded if path.startswith("other")] == ["other-image-tag"]
    assert [url for url in requested if "tracked" in url] == []
