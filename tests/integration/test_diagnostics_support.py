"""Support export: .eml round trips (inbound raw, outbound MIME, rebuilt) and the bundle."""

import email
import email.policy
from email.message import EmailMessage

import pytest

from chatter.models import (
    Contact,
    FailureType,
    Message,
    MessageKind,
    Notification,
    NotificationStatus,
    Subtype,
)
from inbound.models import InboundMail
from outbox.models import MailAttempt, MailRecipient, MailState, OutgoingMail, RecipientStatus
from records.models import Ticket

pytestmark = pytest.mark.django_db

BODY = "Hello Anna,\nthe part ships on Monday.\nRegards, Bob\n"


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def text_body(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def thread():
    ticket = Ticket.objects.create(title="Broken pump")
    anna = Contact.objects.create(name="Anna", email="anna@customer.test")
    message = Message.objects.create(
        record=ticket,
        author=anna,
        subtype=Subtype.objects.get(code="discussion"),
        subject="Re: Broken pump",
        body="<p>the part ships on Monday</p>",
        message_id="<tok123@mailhub.test>",
    )
    return ticket, anna, message


def test_inbound_eml_is_the_raw_source_byte_for_byte(staff_client, thread):
    _, _, message = thread
    source = EmailMessage()
    source["From"] = "Anna <anna@customer.test>"
    source["To"] = "support@mailhub.test"
    source["Subject"] = "Broken pump"
    source["Message-ID"] = "<CAF+abc@mail.customer.test>"
    source["X-Odd-Header"] = "kept   as   received"
    source.set_content(BODY)
    raw = source.as_bytes()
    message.kind = MessageKind.EMAIL
    message.save(update_fields=["kind"])
    inbound = InboundMail.objects.create(
        rcpt_to="support@mailhub.test",
        mail_from="anna@customer.test",
        message_id="<CAF+abc@mail.customer.test>",
        raw=raw,
        decision="alias",
        code=250,
        chatter_message=message,
    )
    for url in (f"/ops/support/inbound/{inbound.pk}/eml", f"/ops/support/message/{message.pk}/eml"):
        response = staff_client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "message/rfc822"
        assert f'filename="inbound-{inbound.pk}.eml"' in response["Content-Disposition"]
        assert response.content == raw
        parsed = parse(response.content)
        assert parsed["Message-ID"] == "<CAF+abc@mail.customer.test>"
        assert text_body(parsed) == BODY


def test_outbound_eml_is_the_mime_as_sent(staff_client, thread):
    _, anna, message = thread
    sent = EmailMessage()
    sent["From"] = "Bob <notifications@mailhub.test>"
    sent["To"] = "anna@customer.test"
    sent["Subject"] = "Re: Broken pump"
    sent["Message-ID"] = "<tok123.1@mailhub.test>"
    sent.set_content(BODY)
    mail = OutgoingMail.objects.create(
        message_id="<tok123.1@mailhub.test>",
        from_addr="notifications@mailhub.test",
        subject="Re: Broken pump",
        body_text="(the row's copy, not what is exported)",
        state=MailState.SENT,
        chatter_message=message,
        mime=sent.as_bytes(),
    )
    notification = Notification.objects.create(
        message=message, contact=anna, kind="email", status="sent", mail=mail
    )
    response = staff_client.get(f"/ops/support/notification/{notification.pk}/eml")
    assert response.status_code == 200
    assert response.content == sent.as_bytes()
    parsed = parse(response.content)
    assert parsed["Message-ID"] == "<tok123.1@mailhub.test>"
    assert text_body(parsed) == BODY


def test_outbound_eml_rebuilt_from_the_queue_row(staff_client, thread):
    _, _, message = thread
    mail = OutgoingMail.objects.create(
        message_id="<tok123.2@mailhub.test>",
        from_addr="Bob <notifications@mailhub.test>",
        reply_to="catchall@mailhub.test",
        subject="Re: Broken pump",
        body_text=BODY,
        body_html="<p>the part ships on Monday</p>",
        references="<first@mailhub.test>",
        state=MailState.EXCEPTION,
        system=True,
    )
    MailRecipient.objects.create(mail=mail, address="anna@customer.test")
    response = staff_client.get(f"/ops/support/mail/{mail.pk}/eml")
    parsed = parse(response.content)
    assert parsed["Message-ID"] == "<tok123.2@mailhub.test>"
    assert parsed["To"] == "anna@customer.test"
    assert parsed["References"] == "<first@mailhub.test>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert "not stored" in parsed["X-MailHub-Rebuilt"]
    assert text_body(parsed) == BODY
    assert "ships on Monday" in parsed.get_body(preferencelist=("html",)).get_content()


def test_auto_deleted_mail_is_rebuilt_from_the_chatter_message(staff_client, thread):
    _, anna, message = thread
    Notification.objects.create(message=message, contact=anna, kind="email", status="sent")
    response = staff_client.get(f"/ops/support/message/{message.pk}/eml")
    parsed = parse(response.content)
    assert parsed["Message-ID"] == "<tok123@mailhub.test>"
    assert parsed["To"] == "anna@customer.test"
    assert "deleted after sending" in parsed["X-MailHub-Rebuilt"]
    assert "the part ships on Monday" in text_body(parsed)


def test_bundle_has_the_delivery_history(staff_client, thread, settings, tmp_path):
    _, anna, message = thread
    settings.LOG_DIR = tmp_path
    (tmp_path / "mailhub.log").write_text(
        "2026-03-10 10:00:01 INFO 42 mailhub.outbox: event=mail.deferred "
        "message_id=<tok123.1@mailhub.test> code=451\n"
        "2026-03-10 10:00:02 INFO 42 mailhub.outbox: event=mail.sent message_id=<other@x>\n"
    )
    mail = OutgoingMail.objects.create(
        message_id="<tok123.1@mailhub.test>",
        from_addr="notifications@mailhub.test",
        subject="Re: Broken pump",
        state=MailState.EXCEPTION,
        attempts=2,
        chatter_message=message,
        failure_type=FailureType.BOUNCE,
        failure_reason="Mail delivery failed via SMTP server 'relay.test'.\nSMTPDataError: 550",
    )
    MailRecipient.objects.create(
        mail=mail,
        address="anna@customer.test",
        status=RecipientStatus.BOUNCED,
        code=550,
        response="5.1.1 <anna@customer.test>: Recipient address rejected: mailbox unknown",
    )
    MailAttempt.objects.create(
        mail=mail, server="relay.test", code=451, error_class="SMTPRecipientsRefused",
        text="4.7.1 Greylisted, try again later",
    )  # fmt: skip
    MailAttempt.objects.create(mail=mail, server="relay.test", code=250, text="2.0.0 Ok: queued")
    Notification.objects.create(
        message=message,
        contact=anna,
        kind="email",
        status=NotificationStatus.BOUNCE,
        failure_type=FailureType.BOUNCE,
        failure_reason="The recipient's server answered: mailbox unknown",
        mail=mail,
    )
    response = staff_client.get(f"/ops/support/message/{message.pk}/bundle.txt")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert "Message-IDs: <tok123.1@mailhub.test> <tok123@mailhub.test>" in text
    assert "Mail delivery failed via SMTP server 'relay.test'." in text
    assert "anna@customer.test: bounced code=550" in text
    assert "5.1.1 <anna@customer.test>: Recipient address rejected" in text
    assert "code=451 SMTPRecipientsRefused" in text and "Greylisted" in text
    assert "code=250" in text
    assert "status=bounce" in text and "failure: Bounce (mail_bounce)" in text
    assert "event=mail.deferred message_id=<tok123.1@mailhub.test> code=451" in text
    assert "message_id=<other@x>" not in text


def test_search_by_message_id_finds_the_recipient_copy_s_message(staff_client, thread):
    _, _, message = thread
    page = staff_client.get("/ops/support/", {"q": "<tok123.3@mailhub.test>"}).content.decode()
    assert f"/ops/support/message/{message.pk}/eml" in page
    assert "Re: Broken pump" in page
    page = staff_client.get("/ops/support/", {"q": "<nothing@x>"}).content.decode()
    assert "Nothing carries the Message-ID" in page


def test_support_export_is_staff_only(client, plain_user, thread):
    _, _, message = thread
    url = f"/ops/support/message/{message.pk}/eml"
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(plain_user)
    assert client.get(url).status_code == 403
    assert client.get("/ops/").status_code == 403


def test_missing_object_is_a_404_saying_so(staff_client):
    response = staff_client.get("/ops/support/mail/999999/eml")
    assert response.status_code == 404
