"""Campaign and mailing-list pages, CSV import, and unsubscribing without a login."""

import json
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from campaigns import content, services
from campaigns.models import Campaign, CampaignRecipient, ListMember, MailingList
from chatter.models import Contact
from outbox.models import MailRecipient, OutgoingMail
from tests.support.campaigns import campaign_make, mailing_list_bulk, outbox_report

pytestmark = pytest.mark.django_db


def test_campaign_pages_are_staff_only(client, plain_user):
    assert client.get("/campaigns/").status_code == 302  # to the login page
    client.force_login(plain_user)
    assert client.get("/campaigns/").status_code == 403
    assert client.get("/campaigns/lists/").status_code == 403


def test_staff_create_a_list_add_a_contact_and_import_a_csv(client, staff_user):
    client.force_login(staff_user)
    response = client.post("/campaigns/lists/", {"name": "Customers", "description": ""})
    lst = MailingList.objects.get()
    assert response.status_code == 302 and response["Location"] == lst.get_absolute_url()

    response = client.post(f"/campaigns/lists/{lst.pk}/add/", {"email": "Ann@Shop.test"})
    assert response.status_code == 302
    assert list(lst.contacts.values_list("email", flat=True)) == ["ann@shop.test"]

    csv_data = (
        b"name;email\n"
        b"Bob;bob@shop.test\n"
        b"Ann again;ann@shop.test\n"
        b"No Address;\n"
        b"Broken;bob at shop\n"
        b"Bob twice;BOB@shop.test\n"
        b"Cleo;cleo@shop.test\n"
    )
    upload = SimpleUploadedFile("contacts.csv", csv_data, content_type="text/csv")
    page = client.post(f"/campaigns/lists/{lst.pk}/import/", {"file": upload})
    assert page.status_code == 200
    report = page.context["report"]
    assert (report.added, report.already, report.contacts_created) == (2, 1, 2)
    assert [(e.line, e.error) for e in report.errors] == [
        (4, "No email address."),
        (5, "Not a valid email address."),
        (6, "Duplicate of line 2: imported once."),
    ]
    html = page.content.decode()
    assert 'id="import-report"' in html and "Not a valid email address." in html
    assert sorted(lst.contacts.values_list("email", flat=True)) == [
        "ann@shop.test",
        "bob@shop.test",
        "cleo@shop.test",
    ]


def test_an_unreadable_csv_is_refused_with_what_to_do(client, staff_user):
    client.force_login(staff_user)
    lst = MailingList.objects.create(name="L")
    upload = SimpleUploadedFile("x.csv", b"name\nBob\n", content_type="text/csv")
    page = client.post(f"/campaigns/lists/{lst.pk}/import/", {"file": upload})
    assert page.status_code == 400
    assert "one called &#x27;email&#x27;" in page.content.decode()
    assert not ListMember.objects.exists()


def test_staff_create_send_and_follow_a_campaign(client, staff_user):
    client.force_login(staff_user)
    lst = mailing_list_bulk(name="News", count=3)
    response = client.post(
        "/campaigns/new/",
        {
            "subject": "Spring sale",
            "mailing_lists": [lst.pk],
            "body_html": "<p>Hi!</p><script>alert(1)</script>",
            "from_addr": "",
        },
    )
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and campaign.state == "draft"
    assert "<script>" not in campaign.body_html

    client.post(f"/campaigns/{campaign.pk}/send/")
    campaign.refresh_from_db()
    assert campaign.state == "in_queue"
    listing = client.get("/campaigns/").content.decode()
    assert "Spring sale" in listing and "Next: starts at the next queue run" in listing

    services.campaign_queue_process()
    progress = client.get(f"/campaigns/{campaign.pk}/progress.json").json()
    assert progress["state"] == "sending" and progress["queued"] == 3 and progress["percent"] == 0
    outbox_report(campaign=campaign)
    progress = client.get(f"/campaigns/{campaign.pk}/progress.json").json()
    assert (progress["state"], progress["sent"], progress["percent"]) == ("sent", 3, 100)
    assert progress["ratios"]["sent"] == 100.0
    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert 'aria-valuenow="100"' in page

    # A second Send is refused with the reason, not silently ignored.
    response = client.post(f"/campaigns/{campaign.pk}/send/", follow=True)
    assert "only a draft can be sent" in response.content.decode()


def test_the_queue_page_says_what_blocks_it(client, staff_user):
    client.force_login(staff_user)
    lst = mailing_list_bulk(name="News", count=1)
    head = campaign_make(subject="Stuck one", lists=[lst])
    nxt = campaign_make(subject="Behind it", lists=[lst])
    services.campaign_send(campaign=head)
    services.campaign_send(campaign=nxt)
    services.campaign_queue_process()
    page = client.get("/campaigns/").content.decode()
    assert "Waiting for “Stuck one” to finish" in page
    assert page.index("Stuck one") < page.index("Behind it")


def test_schedule_form_refuses_the_past(client, staff_user):
    client.force_login(staff_user)
    lst = mailing_list_bulk(name="News", count=1)
    campaign = campaign_make(subject="C", lists=[lst])
    page = client.post(f"/campaigns/{campaign.pk}/schedule/", {"at": "2001-01-01T10:00"})
    assert page.status_code == 400 and "Pick a time in the future" in page.content.decode()
    page = client.post(f"/campaigns/{campaign.pk}/schedule/", {"at": "2099-01-01T10:00"})
    campaign.refresh_from_db()
    assert campaign.state == "in_queue" and campaign.scheduled_at.year == 2099


def _sent_campaign(subject="News 1"):
    lst = MailingList.objects.first() or mailing_list_bulk(name="News", count=2)
    campaign = campaign_make(subject=subject, lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    return campaign


def _one_click_url(mail: OutgoingMail) -> str:
    header = mail.headers["List-Unsubscribe"]
    return urlsplit(header.split(",")[0].strip("<> ")).path


def test_mail_carries_one_click_unsubscribe_headers_and_a_footer():
    campaign = _sent_campaign()
    mail = OutgoingMail.objects.order_by("pk").first()
    assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.headers["Precedence"] == "list"
    assert "<mailto:unsubscribe@" in mail.headers["List-Unsubscribe"]
    assert "Unsubscribe" in mail.body_html and "Unsubscribe: http" in mail.body_text
    assert mail.body_text.startswith("Hello from us.")
    assert not mail.urgent
    assert campaign.pk


def test_one_click_post_unsubscribes_without_login_or_csrf_and_stops_further_mail():
    campaign = _sent_campaign()
    outbox_report(campaign=campaign)
    mail = OutgoingMail.objects.order_by("pk").first()
    address = mail.recipients.get().address
    anonymous = Client(enforce_csrf_checks=True)

    url = _one_click_url(mail)
    response = anonymous.post(url, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and address in response.content.decode()
    member = ListMember.objects.get(contact__email=address)
    assert member.unsubscribed_at and member.unsubscribed_via == "one_click"
    assert member.unsubscribed_campaign_id == campaign.pk
    first_time = member.unsubscribed_at
    # Idempotent: a second POST changes nothing and still answers 200.
    assert anonymous.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert ListMember.objects.get(pk=member.pk).unsubscribed_at == first_time

    second = _sent_campaign(subject="News 2")
    to = set(MailRecipient.objects.filter(mail__subject="News 2").values_list("address", flat=True))
    assert address not in to and len(to) == 1
    skipped = CampaignRecipient.objects.get(campaign=second, email=address)
    assert skipped.status == "skipped" and skipped.skip_reason == "unsubscribed"


def test_unsubscribe_page_get_changes_nothing_and_its_form_confirms():
    _sent_campaign()
    contact = Contact.objects.order_by("pk").first()
    token = content.unsubscribe_token(campaign_id=Campaign.objects.get().pk, contact_id=contact.pk)
    anonymous = Client()
    page = anonymous.get(f"/campaigns/unsubscribe/{token}/")
    assert page.status_code == 200 and 'id="unsubscribe-confirm"' in page.content.decode()
    assert not ListMember.objects.filter(unsubscribed_at__isnull=False).exists()
    page = anonymous.post(f"/campaigns/unsubscribe/{token}/")
    assert page.status_code == 200 and 'id="unsubscribed"' in page.content.decode()
    assert ListMember.objects.get(contact=contact).unsubscribed_via == "link"
    # Its own mail of this campaign that had not left yet is cancelled.
    assert MailRecipient.objects.get(address=contact.email).status == "canceled"


def test_unsubscribe_page_refuses_a_forged_token():
    _sent_campaign()
    contact = Contact.objects.order_by("pk").first()
    forged = f"[{Campaign.objects.get().pk},{contact.pk}]"
    page = Client().get(f"/campaigns/unsubscribe/{forged}/")
    assert page.status_code == 404 and "not valid" in page.content.decode()
    response = Client(enforce_csrf_checks=True).post(f"/campaigns/unsubscribe/{forged}/one-click/")
    assert response.status_code == 404
    assert not ListMember.objects.filter(unsubscribed_at__isnull=False).exists()


def test_progress_endpoint_answers_json_for_staff_only(client, staff_user, plain_user):
    campaign = _sent_campaign()
    client.force_login(plain_user)
    assert client.get(f"/campaigns/{campaign.pk}/progress.json").status_code == 403
    client.force_login(staff_user)
    data = json.loads(client.get(f"/campaigns/{campaign.pk}/progress.json").content)
    assert data["expected"] == 2 and data["skipped"]["Blacklisted Address"] == 0


def test_csv_report_counts_every_line_of_the_file(client, staff_user):
    client.force_login(staff_user)
    lst = MailingList.objects.create(name="Customers")
    lines = [b"email,name", *[f"p{i}@shop.test,P{i}".encode() for i in range(7)], b""]
    lines.insert(4, b" , ")  # a blank row in the middle: 9 lines with the header
    data = b"\n".join(lines)
    assert data.count(b"\n") == 9  # nine lines, the last one ending with a newline
    upload = SimpleUploadedFile("c.csv", data, content_type="text/csv")
    html = client.post(f"/campaigns/lists/{lst.pk}/import/", {"file": upload}).content.decode()
    assert "9 lines read: the header, 7 contact rows and 1 empty line (skipped)." in html


def test_waiting_status_says_its_last_mail_in_the_singular():
    from campaigns import selectors

    lst = mailing_list_bulk(name="One", count=1)
    campaign = campaign_make(subject="Solo", lists=[lst])
    services.campaign_send(campaign=campaign)
    services.campaign_queue_process()
    (entry,) = selectors.campaign_queue(now=timezone.now())
    assert entry.status == "Sending: waiting for the outbox to deliver its last mail"
