"""HTML saved through the Django admin goes through the same sanitiser as the UI."""

import pytest

from campaigns.models import Campaign, MailingList
from chatter.services import message_post
from inbound.models import InboundMail
from tests.support.chatter import ContactFactory, TicketFactory

pytestmark = pytest.mark.django_db

HOSTILE = (
    '<p>Kept <b>bold</b></p><script>alert("admin")</script><img src="x" onerror="alert(1)">'
    '<a href="jav&#x09;ascript:alert(2)">link</a><img src=" //tracker.test/p.gif">'
    '<iframe src="https://evil.test/"></iframe>'
)


def _change_form_data(admin_client, url: str) -> dict:
    """The change form's data as the browser would send it back (inlines included)."""
    context = admin_client.get(url).context
    form = context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        if isinstance(value, list | tuple):
            data[name] = [getattr(v, "pk", v) for v in value]
        elif hasattr(value, "isoformat"):
            data[name] = value.isoformat()
        else:
            data[name] = getattr(value, "pk", value)
    for inline in context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management.initial.get(name, 0)
        for index, sub in enumerate(inline.formset.forms):
            data[f"{inline.formset.prefix}-{index}-id"] = sub.instance.pk
            data[f"{inline.formset.prefix}-{index}-message"] = sub.instance.message_id
    return data


def _assert_safe(body: str) -> None:
    assert "Kept <b>bold</b>" in body
    for bad in ("<script", "onerror", "javascript", "tracker.test", "<iframe"):
        assert bad not in body.lower(), bad


def test_a_message_body_saved_in_the_admin_is_sanitised(admin_client):
    ticket = TicketFactory()
    message = message_post(record=ticket, author=ContactFactory(), body="<p>first</p>")
    url = f"/admin/chatter/message/{message.pk}/change/"
    data = _change_form_data(admin_client, url)
    assert {"subject", "body", "author"} <= set(data)  # the whole form, not just the body
    data["body"] = HOSTILE
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    message.refresh_from_db()
    _assert_safe(message.body)
    page = admin_client.get(ticket.get_absolute_url()).content.decode()
    assert "Kept <b>bold</b>" in page and "<script>alert" not in page


def test_the_body_of_a_received_mail_is_not_editable_in_the_admin(admin_client):
    message = message_post(record=TicketFactory(), author=None, body="<p>as received</p>")
    InboundMail.objects.create(rcpt_to="support@mailhub.test", raw=b"x", chatter_message=message)
    url = f"/admin/chatter/message/{message.pk}/change/"
    assert "body" not in admin_client.get(url).context["adminform"].form.fields
    data = _change_form_data(admin_client, url)
    data["body"] = HOSTILE
    assert admin_client.post(url, data).status_code == 302
    message.refresh_from_db()
    assert message.body == "<p>as received</p>"


def test_a_campaign_body_saved_in_the_admin_is_sanitised(admin_client, admin_user):
    newsletter = MailingList.objects.create(name="Newsletter")
    campaign = Campaign.objects.create(subject="News", body_html="<p>x</p>", created_by=admin_user)
    campaign.mailing_lists.set([newsletter])
    url = f"/admin/campaigns/campaign/{campaign.pk}/change/"
    data = _change_form_data(admin_client, url)
    assert {"subject", "body_html", "mailing_lists"} <= set(data)
    data["body_html"] = HOSTILE
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign.refresh_from_db()
    _assert_safe(campaign.body_html)
    added = _change_form_data(admin_client, "/admin/campaigns/campaign/add/")
    added.update(subject="Added in the admin", body_html=HOSTILE, mailing_lists=[newsletter.pk])
    response = admin_client.post("/admin/campaigns/campaign/add/", added)
    assert response.status_code == 302, response.context["adminform"].form.errors
    _assert_safe(Campaign.objects.get(subject="Added in the admin").body_html)
