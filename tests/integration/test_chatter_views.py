"""The chatter through HTTP: composer, followers, attachments, inbox, preferences and access."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from chatter.models import (
    Attachment,
    Contact,
    Follower,
    Message,
    Notification,
    NotificationKind,
    NotificationPreference,
    Subtype,
)
from chatter.services import contact_for_user, contact_preference_set, follower_add, message_post
from records.models import Ticket
from tests.support.chatter import ContactFactory, StaffFactory, TicketFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def ticket():
    return TicketFactory(title="Broken printer")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def customer_user():
    return UserFactory(username="carla", email="carla@customer.test")


@pytest.fixture
def customer_client(customer_user):
    client = Client()
    client.force_login(customer_user)
    return client


def _url(ticket, action: str) -> str:
    from django.contrib.contenttypes.models import ContentType

    ct = ContentType.objects.get_for_model(Ticket).pk
    return f"/chatter/{ct}/{ticket.pk}/{action}"


def test_record_page_shows_chatter_with_messages_newest_first(staff_client, ticket):
    message_post(record=ticket, author=None, body="<p>first</p>")
    message_post(record=ticket, author=None, body="<p>second</p>")
    page = staff_client.get(ticket.get_absolute_url()).content.decode()
    assert 'id="chatter-thread"' in page
    assert page.index("second") < page.index("first")
    assert "Send message" in page and "Log note" in page


def test_send_message_escapes_typed_text_and_notifies(staff_client, ticket):
    customer = ContactFactory(email="carla@customer.test")
    follower_add(record=ticket, contact=customer)
    response = staff_client.post(
        _url(ticket, "post/"),
        {"action": "message", "subject": "Printer", "body": "Fixed <script>x</script>\nbye"},
    )
    message = Message.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"#message-{message.pk}")
    assert message.subtype.code == Subtype.DISCUSSION
    assert message.subject == "Printer"
    assert message.body == "<p>Fixed &lt;script&gt;x&lt;/script&gt;<br>bye</p>"
    assert message.notifications.get().contact == customer
    page = staff_client.get(ticket.get_absolute_url()).content.decode()
    assert f'id="message-{message.pk}"' in page and "<script>x" not in page


def test_log_note_is_internal_and_hidden_from_customers(
    staff_client, customer_client, customer_user, ticket
):
    follower_add(record=ticket, contact=contact_for_user(user=customer_user))
    staff_client.post(_url(ticket, "post/"), {"action": "note", "body": "Secret margin"})
    staff_client.post(_url(ticket, "post/"), {"action": "message", "body": "Public answer"})
    assert Message.objects.filter(subtype__code=Subtype.NOTE).count() == 1
    assert not Notification.objects.filter(
        contact__user=customer_user, message__subtype__internal=True
    )
    page = customer_client.get(ticket.get_absolute_url()).content.decode()
    assert "Public answer" in page and "Secret margin" not in page
    assert "Log note" not in page
    # A customer cannot log a note by forging the form either.
    response = customer_client.post(_url(ticket, "post/"), {"action": "note", "body": "x"})
    assert response.status_code == 400
    assert "Only internal users can log notes" in response.content.decode()


def test_empty_message_is_refused_and_keeps_the_subject(staff_client, ticket):
    response = staff_client.post(_url(ticket, "post/"), {"action": "message", "subject": "Kept"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Write a message or attach a file" in page
    assert 'value="Kept"' in page
    assert not Message.objects.exists()


def test_line_breaks_in_header_fields_are_form_errors(staff_client, ticket):
    # The subject and a new contact's name end up in mail headers: one line only.
    response = staff_client.post(
        _url(ticket, "post/"),
        {"action": "message", "subject": "Hi\r\nBcc: victim@evil.test", "body": "Text"},
    )
    assert response.status_code == 400
    assert "Keep this on one line" in response.content.decode()
    assert not Message.objects.exists()

    response = staff_client.post(
        _url(ticket, "followers/add/"),
        {"new_name": "Eve\r\nBcc: victim@evil.test", "new_email": "eve@customer.test"},
    )
    assert "Keep this on one line" in response.content.decode()
    assert not Contact.objects.filter(email="eve@customer.test").exists()


def test_mentions_notify_contacts_who_do_not_follow(staff_client, ticket):
    outsider = ContactFactory(name="Olga Outsider", email="olga@partner.test")
    other = ContactFactory(email="otto@partner.test")
    staff_client.post(
        _url(ticket, "post/"),
        {
            "action": "message",
            "body": "Looping you in",
            "mentions": [outsider.pk],
            "mention_emails": "OTTO@partner.test",
        },
    )
    message = Message.objects.get()
    assert set(message.notifications.values_list("contact__email", flat=True)) == {
        "olga@partner.test",
        "otto@partner.test",
    }
    assert not Follower.objects.filter(contact__in=[outsider, other]).exists()


def test_mention_of_an_unknown_address_offers_to_create_the_contact(staff_client, ticket):
    post = {"action": "message", "body": "hi", "mention_emails": "Nora@Nowhere.test"}
    response = staff_client.post(_url(ticket, "post/"), post)
    assert response.status_code == 400
    page = response.content.decode()
    assert "No contact has the address nora@nowhere.test" in page
    assert 'name="create_contacts"' in page and 'value="Nora@Nowhere.test"' in page
    assert not Message.objects.exists()

    response = staff_client.post(_url(ticket, "post/"), {**post, "create_contacts": "on"})
    assert response.status_code == 302
    nora = Contact.objects.get(email="nora@nowhere.test")
    assert list(Message.objects.get().notifications.values_list("contact", flat=True)) == [nora.pk]


def test_a_note_mentioning_a_customer_says_it_will_not_be_mailed(staff_client, ticket):
    carla = ContactFactory(name="Carla Customer", email="carla@customer.test")
    response = staff_client.post(
        _url(ticket, "post/"),
        {"action": "note", "body": "Call Carla back", "mentions": [carla.pk]},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert (
        "A log note is never mailed to customers, so Carla Customer would not be notified" in page
    )
    assert "Call Carla back" in page
    assert not Message.objects.exists()


def test_attachments_are_stored_and_downloaded_safely(staff_client, client, ticket):
    upload = SimpleUploadedFile("report.html", b"<script>alert(1)</script>", "text/html")
    staff_client.post(
        _url(ticket, "post/"), {"action": "message", "body": "see file", "attachments": [upload]}
    )
    attachment = Attachment.objects.get()
    assert attachment.filename == "report.html" and attachment.size == 25
    page = staff_client.get(ticket.get_absolute_url()).content.decode()
    assert attachment.get_absolute_url() in page
    response = staff_client.get(attachment.get_absolute_url())
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert 'filename="report.html"' in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == b"<script>alert(1)</script>"


def test_attachment_of_a_record_you_cannot_see_is_404(customer_client, staff_client, ticket):
    upload = SimpleUploadedFile("x.txt", b"secret", "text/plain")
    staff_client.post(
        _url(ticket, "post/"), {"action": "message", "body": "f", "attachments": [upload]}
    )
    assert customer_client.get(Attachment.objects.get().get_absolute_url()).status_code == 404


def test_add_follower_by_search_inline_create_and_duplicate(staff_client, ticket):
    ContactFactory(name="Dana Doe", email="dana@customer.test")
    response = staff_client.post(_url(ticket, "followers/add/"), {"query": "dana@"})
    assert response.status_code == 302
    assert Follower.objects.filter(object_id=ticket.pk, contact__email="dana@customer.test")

    response = staff_client.post(
        _url(ticket, "followers/add/"), {"new_name": "Eve New", "new_email": "Eve@New.test"}
    )
    assert response.status_code == 302
    eve = Follower.objects.get(object_id=ticket.pk, contact__email="eve@new.test")
    assert eve.contact.name == "Eve New"

    response = staff_client.post(_url(ticket, "followers/add/"), {"contact": eve.contact.pk})
    assert response.status_code == 400
    assert "Eve New &lt;eve@new.test&gt; already follows this record." in response.content.decode()
    assert Follower.objects.filter(contact=eve.contact).count() == 1


def test_add_follower_search_with_several_matches_lists_them(staff_client, ticket):
    ContactFactory(name="Sam One", email="sam1@x.test")
    ContactFactory(name="Sam Two", email="sam2@x.test")
    response = staff_client.post(_url(ticket, "followers/add/"), {"query": "sam"})
    page = response.content.decode()
    assert response.status_code == 400
    assert "2 contacts match" in page and "sam1@x.test" in page and "sam2@x.test" in page
    response = staff_client.post(_url(ticket, "followers/add/"), {"query": "nobody-here"})
    assert "fill in a name and email below to create one" in response.content.decode()


def test_edit_follower_subtypes_and_remove(staff_client, ticket):
    colleague = contact_for_user(user=StaffFactory(username="col", email="col@mailhub.test"))
    follower = follower_add(record=ticket, contact=colleague)
    note = Subtype.objects.get(code=Subtype.NOTE)
    staff_client.post(_url(ticket, f"followers/{follower.pk}/subtypes/"), {"subtypes": [note.pk]})
    assert [s.code for s in follower.subtypes.all()] == [Subtype.NOTE]
    staff_client.post(_url(ticket, f"followers/{follower.pk}/remove/"))
    assert not Follower.objects.filter(pk=follower.pk).exists()


def test_records_are_404_to_non_followers(customer_client, customer_user, ticket):
    upload_free_urls = [
        ticket.get_absolute_url(),
        _url(ticket, "post/"),
        _url(ticket, "followers/add/"),
        _url(ticket, "follow/"),
    ]
    assert customer_client.get(upload_free_urls[0]).status_code == 404
    for url in upload_free_urls[1:]:
        assert customer_client.post(url, {"body": "x", "action": "message"}).status_code == 404
    assert not Message.objects.exists()
    # Once following, the customer sees the record, still cannot manage followers.
    follower_add(record=ticket, contact=contact_for_user(user=customer_user))
    assert customer_client.get(ticket.get_absolute_url()).status_code == 200
    assert customer_client.post(_url(ticket, "followers/add/"), {"query": "x"}).status_code == 404
    assert customer_client.get("/chatter/contacts/search/?q=a").status_code == 404


def test_missing_record_and_non_chatter_model_are_404(staff_client):
    from django.contrib.contenttypes.models import ContentType

    user_ct = ContentType.objects.get(app_label="auth", model="user").pk
    assert staff_client.get("/records/ticket/999999/").status_code == 404
    assert staff_client.post(f"/chatter/{user_ct}/1/post/", {"body": "x"}).status_code == 404


def test_pages_require_login(client, ticket):
    for url in (ticket.get_absolute_url(), "/chatter/inbox/", "/chatter/preferences/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_forms_require_csrf(staff_user, ticket):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff_user)
    response = strict.post(_url(ticket, "post/"), {"action": "message", "body": "x"})
    assert response.status_code == 403
    assert not Message.objects.exists()
    page = strict.get(ticket.get_absolute_url()).content.decode()
    assert page.count("csrfmiddlewaretoken") >= page.count("<form")


def test_contact_search_finds_by_name_or_email(staff_client):
    ContactFactory(name="Zoe Zed", email="zoe@zz.test")
    ContactFactory(name="Other", email="zoe.other@zz.test")
    ContactFactory(name="Nobody", email="n@n.test")
    results = staff_client.get("/chatter/contacts/search/?q=zoe").json()["results"]
    assert {r["email"] for r in results} == {"zoe@zz.test", "zoe.other@zz.test"}


def test_inbox_lists_unread_and_marks_read(client, ticket):
    agent_user = StaffFactory(username="agent", email="agent@mailhub.test")
    agent = contact_preference_set(
        contact=contact_for_user(user=agent_user), preference=NotificationPreference.INBOX
    )
    follower_add(record=ticket, contact=agent)
    for text in ("one", "two", "three"):
        message_post(record=ticket, author=None, body=f"<p>Inbox {text}</p>")
    client.force_login(agent_user)
    page = client.get("/chatter/inbox/").content.decode()
    assert "Inbox one" in page and "Inbox three" in page
    assert '<span class="badge">3</span>' in page  # the top bar counter

    first = Notification.objects.filter(contact=agent, kind=NotificationKind.INBOX).first()
    client.post(f"/chatter/inbox/{first.pk}/read/")
    page = client.get("/chatter/inbox/").content.decode()
    assert '<span class="badge">2</span>' in page
    client.post("/chatter/inbox/read-all/")
    page = client.get("/chatter/inbox/").content.decode()
    assert "Nothing unread" in page and '<span class="badge">0</span>' in page
    assert "Inbox two" in client.get("/chatter/inbox/?show=all").content.decode()


def test_marking_someone_elses_notification_does_nothing(client, ticket):
    agent_user = StaffFactory(username="agent2", email="agent2@mailhub.test")
    agent = contact_preference_set(
        contact=contact_for_user(user=agent_user), preference=NotificationPreference.INBOX
    )
    follower_add(record=ticket, contact=agent)
    message_post(record=ticket, author=None, body="<p>x</p>")
    intruder = StaffFactory(username="intruder", email="i@mailhub.test")
    client.force_login(intruder)
    client.post(f"/chatter/inbox/{Notification.objects.get().pk}/read/")
    assert Notification.objects.get().is_read is False


def test_preferences_refuse_the_inbox_to_customers(customer_client, staff_client, staff_user):
    response = customer_client.post("/chatter/preferences/", {"notification_preference": "inbox"})
    assert response.status_code == 400
    assert "Only internal users can handle notifications in MailHub" in response.content.decode()
    response = staff_client.post("/chatter/preferences/", {"notification_preference": "inbox"})
    assert response.status_code == 302
    staff_user.contact.refresh_from_db()
    assert staff_user.contact.notification_preference == NotificationPreference.INBOX


def test_visibility_selectors_used_by_other_areas(customer_user, staff_user, ticket):
    from chatter.selectors import record_visible_to, user_can_see_message

    public = message_post(record=ticket, author=None, body="<p>p</p>")
    note = message_post(record=ticket, author=None, body="<p>n</p>", subtype_code=Subtype.NOTE)
    assert record_visible_to(user=staff_user, record=ticket)
    assert user_can_see_message(user=staff_user, message=note)
    assert not record_visible_to(user=customer_user, record=ticket)
    assert not user_can_see_message(user=customer_user, message=public)
    follower_add(record=ticket, contact=contact_for_user(user=customer_user))
    assert record_visible_to(user=customer_user, record=ticket)
    assert user_can_see_message(user=customer_user, message=public)
    assert not user_can_see_message(user=customer_user, message=note)
    customer_user.is_active = False
    assert not record_visible_to(user=customer_user, record=ticket)


def test_customers_do_not_see_other_followers_addresses(customer_client, customer_user, ticket):
    follower_add(record=ticket, contact=contact_for_user(user=customer_user))
    follower_add(record=ticket, contact=ContactFactory(name="Other Client", email="o@other.test"))
    page = customer_client.get(ticket.get_absolute_url()).content.decode()
    assert "Other Client" in page and "o@other.test" not in page


def test_a_5_mb_post_without_javascript_is_a_form_error_that_keeps_the_text(staff_client, ticket):
    body = "y" * (5 * 1024 * 1024)  # a paste the browser check would stop; here nothing does
    response = staff_client.post(_url(ticket, "post/"), {"action": "message", "body": body})
    assert response.status_code == 400
    page = response.content.decode()
    assert "This message is 5 MB; the limit is 2 MB of text" in page
    assert body in page
    assert not Message.objects.exists()


def test_a_post_over_the_text_limit_is_a_form_error_that_keeps_the_text(staff_client, ticket):
    from mailhub.text_limits import MAX_TEXT_BYTES

    body = "x" * (MAX_TEXT_BYTES + 10)  # under Django's request limit, over the text limit
    response = staff_client.post(_url(ticket, "post/"), {"action": "message", "body": body})
    assert response.status_code == 400
    page = response.content.decode()
    assert "This message is 2.1 MB; the limit is 2 MB of text" in page
    assert body in page
    assert not Message.objects.exists()
