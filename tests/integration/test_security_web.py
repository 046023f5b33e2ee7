"""Hostile input against the web: every page, every POST, every displayed field.

The URL lists are read from the resolver at run time, so a page added later is covered without
editing this file: it must ask for a login, refuse a POST without a CSRF token, and (when it is
an operations page) refuse non-staff users.
"""

import re
import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from chatter.models import Contact, Follower, Message
from chatter.services import follower_add
from outbox.models import MailRecipient, OutgoingMail
from records.models import Ticket
from tests.support.chatter import ContactFactory, TicketFactory

pytestmark = pytest.mark.django_db

# Pages that must answer without a login, and why.
PUBLIC = {
    "login": "the login form itself",
    "logout": "logging out needs no login",
    "healthz": "probed by the orchestrator, shows no data",
    "admin:login": "the admin's own login form",
    "admin:logout": "logging out needs no login",
}


def _public(name: str) -> bool:
    # One-click unsubscribe links from mail (RFC 8058) work without a session.
    return name in PUBLIC or "unsubscribe" in name


def _sample(name: str, converter) -> str:
    """A value the URL's converter accepts (existence does not matter: login comes first)."""
    kind = type(converter).__name__
    if name == "kind":
        regex = getattr(converter, "regex", "")
        return "ticket" if kind == "SlugConverter" else regex.split("|")[0]
    if name == "app_label":
        return "auth"
    if kind == "UUIDConverter":
        return str(uuid.uuid4())
    if kind in ("IntConverter",):
        return "1"
    if kind == "SlugConverter":
        return "x"
    return "1"


def _walk(resolver: URLResolver, namespace: str = "", converters=None):
    for entry in resolver.url_patterns:
        pattern_converters = {**(converters or {}), **getattr(entry.pattern, "converters", {})}
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            yield from _walk(entry, f"{namespace}{ns}:" if ns else namespace, pattern_converters)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}", entry, pattern_converters


def named_urls() -> list[tuple[str, str]]:
    """(url name, a concrete path) for every named URL of the site."""
    urls = []
    for name, entry, converters in _walk(get_resolver()):
        regex_names = list(getattr(entry.pattern, "regex", re.compile("")).groupindex)
        kwargs = {}
        for arg in set(converters) | set(regex_names):
            kwargs[arg] = _sample(arg, converters.get(arg))
        try:
            path = reverse(name, kwargs=kwargs)
        except Exception:  # noqa: BLE001 - e.g. a regex with a fixed alternation: try ints
            try:
                path = reverse(name, kwargs=dict.fromkeys(kwargs, "1"))
            except Exception:  # noqa: BLE001
                continue
        urls.append((name, path))
    return urls


STAFF_NAMESPACES = ("admin:", "diagnostics:")
STAFF_NAMES = ("devrelay",)


def staff_urls() -> list[tuple[str, str]]:
    return [
        (name, path)
        for name, path in named_urls()
        if (name.startswith(STAFF_NAMESPACES) or name in STAFF_NAMES) and not _public(name)
    ]


def test_the_url_walk_sees_the_whole_site():
    names = {name for name, _ in named_urls()}
    # A walk that silently found nothing would make every test below pass for nothing.
    assert {"home", "records:detail", "chatter:post", "diagnostics:dashboard"} <= names
    assert "admin:index" in names and any(n.endswith("_changelist") for n in names)


@pytest.mark.parametrize("method", ["get", "post"])
def test_every_page_but_the_public_ones_asks_for_a_login(client, method):
    wrong = []
    for name, path in named_urls():
        if _public(name):
            continue
        response = getattr(client, method)(path)
        location = response.get("Location", "")
        if response.status_code != 302 or not location.startswith(("/login/", "/admin/login/")):
            wrong.append(f"{method.upper()} {path} ({name}) → {response.status_code} {location}")
    assert wrong == [], "pages reachable without a login:\n" + "\n".join(wrong)


def test_every_post_without_a_csrf_token_is_refused(staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    wrong = []
    for name, path in named_urls():
        if "unsubscribe" in name:
            continue  # RFC 8058 one-click POST comes from the mail client: a signed token instead
        response = client.post(path, {"title": "csrf", "body": "csrf"})
        if response.status_code != 403:
            wrong.append(f"POST {path} ({name}) → {response.status_code}")
    assert wrong == [], "POSTs accepted without a CSRF token:\n" + "\n".join(wrong)


def test_a_forged_post_changes_nothing_and_the_real_form_works(staff_user):
    ticket = TicketFactory(created_by=staff_user)
    ct = ContentType.objects.get_for_model(Ticket).pk
    url = reverse("chatter:post", args=[ct, ticket.pk])
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(staff_user)
    response = forged.post(url, {"action": "message", "body": "forged"})
    assert response.status_code == 403
    assert not Message.objects.filter(body__contains="forged").exists()

    # The same POST with the page's token goes through: the 403 above was the token, nothing else.
    page = forged.get(ticket.get_absolute_url())
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1)
    response = forged.post(
        url, {"action": "message", "body": "genuine", "csrfmiddlewaretoken": token.decode()}
    )
    assert response.status_code == 302
    assert Message.objects.filter(body__contains="genuine").exists()


def test_operations_and_admin_pages_are_refused_to_non_staff(plain_user):
    client = Client()
    client.force_login(plain_user)
    urls = staff_urls()
    assert len(urls) > 10, "the staff page list is suspiciously short"
    wrong = []
    for name, path in urls:
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            refused = response.status_code in (403, 404) or (
                response.status_code == 302 and response["Location"].startswith("/admin/login/")
            )
            if not refused:
                wrong.append(f"{method.upper()} {path} ({name}) → {response.status_code}")
    assert wrong == [], "staff pages open to a non-staff user:\n" + "\n".join(wrong)


def test_staff_only_actions_on_records_are_refused_to_customers(plain_user):
    ticket = TicketFactory()
    contact = ContactFactory(user=plain_user, email=plain_user.email)
    Follower.objects.create(
        content_type=ContentType.objects.get_for_model(Ticket), object_id=ticket.pk, contact=contact
    )
    ct = ContentType.objects.get_for_model(Ticket).pk
    client = Client()
    client.force_login(plain_user)
    before = (Ticket.objects.count(), Follower.objects.count(), Contact.objects.count())

    create = client.post(reverse("records:new", args=["ticket"]), {"title": "mine now"})
    add = client.post(
        reverse("chatter:follower_add", args=[ct, ticket.pk]),
        {"new_name": "Intruder", "new_email": "intruder@evil.test"},
    )
    note = client.post(
        reverse("chatter:post", args=[ct, ticket.pk]), {"action": "note", "body": "internal?"}
    )
    search = client.get(reverse("chatter:contact_search"), {"q": "contact"})

    assert create.status_code == 404 and add.status_code == 404 and search.status_code == 404
    assert note.status_code == 400 and b"Only internal users can log notes" in note.content
    assert (Ticket.objects.count(), Follower.objects.count(), Contact.objects.count()) == before
    assert not Message.objects.filter(body__contains="internal?").exists()


def test_records_of_others_are_not_found_rather_than_forbidden(plain_user):
    """A customer guessing record numbers learns nothing: not-yours looks like does-not-exist."""
    theirs = TicketFactory(title="Someone else's ticket")
    ct = ContentType.objects.get_for_model(Ticket).pk
    client = Client()
    client.force_login(plain_user)
    detail = client.get(theirs.get_absolute_url())
    missing = client.get(reverse("records:detail", args=["ticket", theirs.pk + 1000]))
    post = client.post(reverse("chatter:post", args=[ct, theirs.pk]), {"body": "let me in"})
    assert detail.status_code == missing.status_code == post.status_code == 404
    assert b"Someone else" not in detail.content
    assert not Message.objects.filter(body__contains="let me in").exists()


# --- cross-site scripting -----------------------------------------------------------------------

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def _xss_world(staff_user, plain_user):
    """A ticket whose every displayed field carries a script, seen by staff and a follower."""
    ticket = TicketFactory(title=f"T {XSS}", created_by=staff_user)
    ct = ContentType.objects.get_for_model(Ticket)
    customer = ContactFactory(user=plain_user, email=plain_user.email, name=f"Cust {XSS}")
    Follower.objects.create(content_type=ct, object_id=ticket.pk, contact=customer)
    client = Client()
    client.force_login(staff_user)
    upload = SimpleUploadedFile(f'a"{XSS}.html', b"<script>alert(1)</script>", "text/html")
    response = client.post(
        reverse("chatter:post", args=[ct.pk, ticket.pk]),
        {"action": "message", "subject": f"S {XSS}", "body": f"B {XSS}", "attachments": upload},
    )
    assert response.status_code == 302, response.content[:500]
    return ticket, client


def _assert_inert(content: bytes, where: str) -> None:
    assert b"<script>window.__xss" not in content, f"script tag executed-ready in {where}"
    assert b"<img src=x" not in content, f"an img tag with an event handler is live in {where}"


def test_script_in_every_displayed_field_is_shown_as_text(
    staff_user, plain_user, django_user_model
):
    ticket, staff = _xss_world(staff_user, plain_user)
    customer = Client()
    customer.force_login(plain_user)
    admin = Client()
    admin.force_login(
        django_user_model.objects.create_superuser("root", "root@mailhub.test", "root-password")
    )
    pages = {
        "record page (staff)": staff.get(ticket.get_absolute_url()),
        "record list": staff.get(reverse("records:list", args=["ticket"])),
        "record page (customer)": customer.get(ticket.get_absolute_url()),
        "inbox (customer)": customer.get(reverse("chatter:inbox") + "?show=all"),
        "admin contacts": admin.get(reverse("admin:chatter_contact_changelist")),
        "admin messages": admin.get(reverse("admin:chatter_message_changelist")),
        "support search": staff.get(reverse("diagnostics:support_search"), {"q": "xss"}),
    }
    for where, response in pages.items():
        assert response.status_code == 200, where
        _assert_inert(response.content, where)
    # The contact picker gets JSON (never parsed as HTML by the browser) and writes it as text.
    search = staff.get(reverse("chatter:contact_search"), {"q": "Cust"})
    assert search["Content-Type"] == "application/json"
    assert search.json()["results"][0]["name"] == f"Cust {XSS}"
    # The values are displayed (escaped), so the check above looked at the right text.
    page = pages["record page (staff)"].content
    assert page.count(b"&lt;script&gt;window.__xss=1&lt;/script&gt;") >= 4  # title/subject/body/who


def test_uploaded_html_is_downloaded_never_rendered(staff_user, plain_user):
    ticket, staff = _xss_world(staff_user, plain_user)
    attachment = Message.objects.get(subject__startswith="S ").attachments.get()
    response = staff.get(reverse("chatter:attachment", args=[attachment.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]


# --- header injection ---------------------------------------------------------------------------

INJECTED = "Hello\r\nBcc: victim@evil.test\r\nX-Injected: 1"


def test_header_injection_in_the_composer_never_reaches_a_mail_header(staff_user, plain_user):
    ticket = TicketFactory(created_by=staff_user, title="Injection\r\nBcc: t@evil.test")
    ct = ContentType.objects.get_for_model(Ticket)
    follower_add(record=ticket, contact=ContactFactory(email="cust@customer.test"))
    client = Client()
    client.force_login(staff_user)
    response = client.post(
        reverse("chatter:post", args=[ct.pk, ticket.pk]),
        {"action": "message", "subject": INJECTED, "body": "see subject"},
    )
    assert response.status_code in (302, 400)
    # Whatever the subject holds, the injected address never becomes a recipient (the mail that
    # leaves is checked header by header in tests/e2e/test_hostile_input.py).
    addresses = set(MailRecipient.objects.values_list("address", flat=True))
    assert "victim@evil.test" not in addresses and "t@evil.test" not in addresses
    if response.status_code == 302:
        assert addresses == {"cust@customer.test"}
    for mail in OutgoingMail.objects.all():
        for header in (mail.from_addr, mail.reply_to):
            assert "\r" not in header and "\n" not in header, f"newline kept in {header!r}"


@pytest.mark.parametrize(
    "name,email",
    [
        ("Eve", "eve@customer.test\r\nBcc: victim@evil.test"),
        ("Eve", "eve@customer.test, victim@evil.test"),
        ("Eve", "<script>@customer.test"),
    ],
)
def test_header_injection_in_a_new_follower_is_a_form_error(staff_user, name, email):
    ticket = TicketFactory(created_by=staff_user)
    ct = ContentType.objects.get_for_model(Ticket).pk
    client = Client()
    client.force_login(staff_user)
    response = client.post(
        reverse("chatter:follower_add", args=[ct, ticket.pk]),
        {"new_name": name, "new_email": email},
    )
    assert response.status_code in (302, 400)
    for contact in Contact.objects.all():
        assert "\n" not in contact.name and "\r" not in contact.name
        assert "\n" not in contact.email and "," not in contact.email and "<" not in contact.email
    if response.status_code == 400:
        assert b"errorlist" in response.content or b"error" in response.content
