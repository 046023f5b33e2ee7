"""What inbound mail looks like once posted: safe HTML, images, attachments, broken MIME, .eml."""

import base64
import re

import pytest

from chatter.models import Attachment, Message
from chatter.services import contact_for_user, follower_add
from inbound.models import InboundMail
from records.models import Ticket
from tests.support.chatter import StaffFactory, UserFactory
from tests.support.inbound import build_mail, send

pytestmark = pytest.mark.django_db(transaction=True)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)

XSS_CORPUS = [
    "<script>alert('xss-script')</script>",
    "<img src=x onerror=\"alert('xss-onerror')\">",
    "<a href=\"javascript:alert('xss-link')\">click me</a>",
    "<svg onload=\"alert('xss-svg')\"><script>alert('xss-svg2')</script></svg>",
    "<iframe src=\"javascript:alert('xss-iframe')\"></iframe>",
    "<body onload=\"alert('xss-body')\">",
    "<div style=\"background:url(javascript:alert('xss-style'))\">styled</div>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('xss-mxss')>",
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data</a>',
    '<form action="https://evil.test/"><input name=password></form>',
    "<object data=\"javascript:alert('xss-object')\"></object>",
    "<img src=\"jav&#x09;ascript:alert('xss-entity')\">",
]


def _staff_client(client):
    staff = StaffFactory()
    client.force_login(staff)
    return staff


def _post_html(port: int, html: str, message_id: str) -> Message:
    send(port, build_mail(html=html, message_id=message_id, subject="html mail"))
    return Message.objects.get(message_id=message_id)


def test_xss_corpus_is_inert_in_the_chatter_page(mail_domain, inbound_listener, client):
    listener = inbound_listener()
    html = "<p>Corpus follows</p>" + "".join(XSS_CORPUS)
    message = _post_html(listener.port, html, "<xss@customer.test>")
    _staff_client(client)
    page = client.get(message.record.get_absolute_url()).content.decode()
    body = page[page.index(f'id="message-{message.pk}"') :]
    body = body[: body.index("</article>")]
    assert "Corpus follows" in body
    for needle in (
        "<script",
        "onerror",
        "onload",
        "javascript:",
        "<svg",
        "<iframe",
        "<form",
        "<object",
        "<style",
        "data:text/html",
        "style=",
    ):
        assert needle not in body.lower(), f"{needle} survived sanitising"


@pytest.mark.browser
def test_xss_corpus_runs_no_script_in_a_real_browser(
    mail_domain, inbound_listener, login_page, live_server
):
    listener = inbound_listener()
    message = _post_html(listener.port, "".join(XSS_CORPUS), "<xss-browser@customer.test>")
    staff = StaffFactory(password="staff-password")
    page = login_page(staff, "staff-password")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(live_server.url + message.record.get_absolute_url())
    page.wait_for_selector(f"#message-{message.pk}")
    page.wait_for_timeout(500)
    assert dialogs == []
    handlers = page.eval_on_selector_all(
        f"#message-{message.pk} .message-body *",
        "els => els.flatMap(e => [...e.attributes].map(a => a.name))"
        ".filter(n => n.startsWith('on'))",
    )
    assert handlers == []


def test_remote_images_are_blocked_until_asked(mail_domain, inbound_listener, client):
    listener = inbound_listener()
    html = '<p>Look</p><img src="https://tracker.example.test/pixel.gif" alt="pixel">'
    message = _post_html(listener.port, html, "<remote@customer.test>")
    assert "tracker.example.test" not in message.body
    row = InboundMail.objects.get()
    assert row.remote_images
    _staff_client(client)
    page = client.get(message.record.get_absolute_url()).content.decode()
    assert "Remote images blocked" in page and f"/inbound/mail/{row.pk}/?images=1" in page
    shown = client.get(f"/inbound/mail/{row.pk}/?images=1").content.decode()
    assert 'src="https://tracker.example.test/pixel.gif"' in shown
    hidden = client.get(f"/inbound/mail/{row.pk}/").content.decode()
    assert "tracker.example.test" not in hidden and "Show images" in hidden


def test_cid_images_are_served_from_the_stored_attachment(mail_domain, inbound_listener, client):
    listener = inbound_listener()
    msg = build_mail(message_id="<cid@customer.test>")
    msg.add_alternative('<p>Logo:</p><img src="cid:logo@customer.test" alt="logo">', subtype="html")
    msg.get_payload()[1].add_related(PNG, "image", "png", cid="<logo@customer.test>")
    send(listener.port, msg)
    message = Message.objects.get(message_id="<cid@customer.test>")
    row = InboundMail.objects.get()
    url = f"/inbound/mail/{row.pk}/cid/logo@customer.test"
    assert f'src="{url}"' in message.body
    _staff_client(client)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == PNG
    assert response["X-Content-Type-Options"] == "nosniff"
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404, "not visible to someone outside the record"


def test_attachments_are_stored_and_listed(mail_domain, inbound_listener, client):
    listener = inbound_listener()
    msg = build_mail(message_id="<att@customer.test>")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="q.pdf")
    msg.add_attachment(b"secret", maintype="text", subtype="plain", filename="../../etc/passwd")
    send(listener.port, msg)
    message = Message.objects.get(message_id="<att@customer.test>")
    files = {a.filename: a for a in Attachment.objects.filter(message=message)}
    assert set(files) == {"q.pdf", "passwd"}, "directories never come from the sender"
    assert files["q.pdf"].file.read() == b"%PDF-1.4 fake"
    _staff_client(client)
    page = client.get(message.record.get_absolute_url()).content.decode()
    assert "q.pdf" in page


def test_raw_eml_is_downloadable_by_staff_only(mail_domain, inbound_listener, client):
    listener = inbound_listener()
    send(listener.port, build_mail(message_id="<raw@customer.test>", body="raw body here"))
    row = InboundMail.objects.get()
    customer = UserFactory(email="carla@customer.test")
    follower_add(
        record=Ticket.objects.get(), contact=contact_for_user(user=customer), ignore_existing=True
    )
    client.force_login(customer)
    assert client.get(f"/inbound/mail/{row.pk}/raw/").status_code == 404
    assert client.get(f"/inbound/mail/{row.pk}/").status_code == 200, "followers see the mail"
    _staff_client(client)
    response = client.get(f"/inbound/mail/{row.pk}/raw/")
    assert response.status_code == 200
    assert response["Content-Type"] == "message/rfc822"
    assert "attachment" in response["Content-Disposition"]
    assert b"raw body here" in response.content and b"<raw@customer.test>" in response.content


MALFORMED = {
    "unknown-charset": (
        b"From: a@customer.test\r\nSubject: charset\r\nContent-Type: text/plain; "
        b"charset=x-klingon-42\r\n\r\nCaf\xe9 cr\xe8me\r\n"
    ),
    "truncated-base64": (
        b"From: a@customer.test\r\nSubject: b64\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\nContent-Type: text/plain\r\n'
        b"\r\nhello\r\n--zz\r\nContent-Type: application/pdf; name=x.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJe\r\n"
    ),
    "missing-boundary-parameter": (
        b"From: a@customer.test\r\nSubject: nob\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    ),
    "boundary-never-closed": (
        b"From: a@customer.test\r\nSubject: open\r\nContent-Type: multipart/mixed; boundary=q\r\n"
        b"\r\n--q\r\nContent-Type: text/html\r\n\r\n<p>unclosed <b>html\r\n"
    ),
    "bad-encoded-words": (
        b"From: =?utf-8?B?####?= <a@customer.test>\r\nSubject: =?unknown?Q?=ZZ=?= and\r\n"
        b" =?utf-8?q?broken\r\n\r\nbody\r\n"
    ),
    "no-headers": b"\r\njust a body, no headers at all\r\n",
    "raw-8bit-headers": b"From: J\xf6rg <a@customer.test>\r\nSubject: Gr\xfc\xdfe\r\n\r\nHallo\r\n",
    "bad-quoted-printable": (
        b"From: a@customer.test\r\nSubject: qp\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"\r\nbroken =ZZ sequence =\r\n"
    ),
    "deep-nesting": b"From: a@customer.test\r\nSubject: deep\r\n"
    + b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(60)
    )
    + b"Content-Type: text/plain\r\n\r\ndeep text\r\n",
    "truncated-rfc822": (
        b"From: a@customer.test\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=m\r\n"
        b"\r\n--m\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y\r\nSubj"
    ),
    "empty": b"",
    "header-injection": (
        b"From: a@customer.test\r\nSubject: =?utf-8?q?evil=0D=0ABcc=3A_x=40y.test?=\r\n\r\nhi\r\n"
    ),
}


def test_malformed_mail_is_accepted_and_shown(mail_domain, inbound_listener, client):
    listener = inbound_listener()
    for n, (name, raw) in enumerate(MALFORMED.items()):
        refused = send(
            listener.port, raw, mail_from=f"sender{n}@customer.test", to=["support@mailhub.test"]
        )
        assert refused == {}, name
    rows = list(InboundMail.objects.order_by("id"))
    assert len(rows) == len(MALFORMED)
    for name, row in zip(MALFORMED, rows, strict=True):
        assert row.processed_at is not None and row.error == "", (name, row.error)
        assert row.chatter_message is not None, name
    assert Ticket.objects.count() == len(MALFORMED)
    subjects = set(Ticket.objects.values_list("title", flat=True))
    assert "evil Bcc: x@y.test" in subjects, "decoded newlines never reach a header"
    assert not any(re.search(r"[\r\n]", s) for s in subjects)
    _staff_client(client)
    for ticket in Ticket.objects.all():
        assert client.get(ticket.get_absolute_url()).status_code == 200


def test_admin_lists_inbound_mail_with_its_source(mail_domain, inbound_listener, client):
    listener = inbound_listener()
    send(listener.port, build_mail(message_id="<admin@customer.test>"))
    row = InboundMail.objects.get()
    client.force_login(StaffFactory(is_superuser=True))
    listing = client.get("/admin/inbound/inboundmail/").content.decode()
    assert "carla@customer.test" in listing and "support@mailhub.test" in listing
    page = client.get(f"/admin/inbound/inboundmail/{row.pk}/change/").content.decode()
    assert f"/inbound/mail/{row.pk}/raw/" in page
    assert client.get("/admin/inbound/alias/").status_code == 200
    assert client.get("/admin/inbound/aliasdomain/").status_code == 200
