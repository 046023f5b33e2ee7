"""Staff pages outside the admin check Django permissions, not just ``is_staff``.

The matrix (role × page → HTTP code) is computed here through the real URLs and views, checked
against what each role must get, and must equal the "Permissions" table of docs/reliability.md.
Rewrite that table after a change with:
    MAILHUB_WRITE_DOCS=1 ./run test tests/integration/test_permissions_matrix.py
"""

import os
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign, MailingList
from chatter.services import message_post
from inbound.models import AliasDomain, InboundMail
from mailhub import permissions as p
from tests.conftest import grant
from tests.support.chatter import ContactFactory, TicketFactory

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
START = "<!-- permissions-matrix:start -->"
END = "<!-- permissions-matrix:end -->"


def _world(staff_author) -> dict:
    ticket = TicketFactory(created_by=staff_author)
    message = message_post(record=ticket, author=ContactFactory(), body="<p>hello</p>")
    return {
        "domain": AliasDomain.objects.create(domain="perm.test"),
        "message": message,
        "inbound": InboundMail.objects.create(rcpt_to="a@perm.test", raw=b"Subject: x\r\n\r\nx"),
        "contact": ContactFactory(email="listed@customer.test"),
        "list": MailingList.objects.create(name="Newsletter"),
        "campaign": Campaign.objects.create(subject="Spring", body_html="<p>hi</p>"),
    }


def _pages(w: dict) -> list[tuple[str, str, str, str]]:
    """(page, method, path, the permission(s) it needs)."""
    m, c, ml, camp = w["message"].pk, w["contact"].pk, w["list"].pk, w["campaign"].pk
    return [
        ("ops dashboard", "get", reverse("diagnostics:dashboard"), p.OPERATIONS),
        (
            "ops domain check",
            "get",
            reverse("diagnostics:domain", args=[w["domain"].pk]),
            p.OPERATIONS,
        ),
        ("dev relay mailbox", "get", reverse("devrelay"), p.OPERATIONS),
        ("support search", "get", reverse("diagnostics:support_search"), p.SUPPORT),
        ("support case", "get", reverse("diagnostics:support", args=["message", m]), p.SUPPORT),
        ("support .eml", "get", reverse("diagnostics:support_eml", args=["message", m]), p.SUPPORT),
        (
            "support bundle",
            "get",
            reverse("diagnostics:support_bundle", args=["message", m]),
            p.SUPPORT,
        ),
        ("raw inbound mail", "get", reverse("inbound:raw", args=[w["inbound"].pk]), p.RAW_MAIL),
        ("contact list", "get", reverse("contacts:list"), p.CONTACTS_VIEW),
        ("contact page", "get", reverse("contacts:detail", args=[c]), p.CONTACTS_VIEW),
        (
            "blacklist a contact",
            "post",
            reverse("contacts:blacklist", args=[c]),
            (p.CONTACTS_VIEW, p.CONTACTS_CHANGE),
        ),
        ("campaign list", "get", reverse("campaigns:index"), p.CAMPAIGNS_VIEW),
        ("campaign page", "get", reverse("campaigns:detail", args=[camp]), p.CAMPAIGNS_VIEW),
        ("new campaign", "get", reverse("campaigns:new"), p.CAMPAIGNS_ADD),
        ("edit campaign", "post", reverse("campaigns:edit", args=[camp]), p.CAMPAIGNS_CHANGE),
        ("mailing lists", "get", reverse("campaigns:lists"), p.LISTS_VIEW),
        ("mailing list page", "get", reverse("campaigns:list_detail", args=[ml]), p.LISTS_VIEW),
        ("add list member", "post", reverse("campaigns:list_add", args=[ml]), p.LISTS_CHANGE),
    ]


def _needed(perm) -> tuple[str, ...]:
    return perm if isinstance(perm, tuple) else (perm,)


def _roles(django_user_model, staff_user, plain_user, bare_staff_user) -> dict:
    superuser = django_user_model.objects.create_superuser("root", "root@mailhub.test", "pw")
    return {
        "anonymous": None,
        "customer": plain_user,
        "staff, no permission": bare_staff_user,
        "staff, operations role": staff_user,
        "superuser": superuser,
    }


def _code(user, method: str, path: str) -> str:
    client = Client()
    if user is not None:
        client.force_login(user)
    data = {"blacklist-reason": "bounces", "email": "new@customer.test", "subject": "Spring"}
    response = getattr(client, method)(path, data)
    if response.status_code == 302:
        return "302 login" if "/login/" in response["Location"] else "302"
    return str(response.status_code)


def _let_in(code: str) -> bool:
    """The view ran: a page, a redirect after the action, or the form's own 400 on bad input."""
    return code in ("200", "302", "400")


def _table(pages, roles, codes) -> str:
    head = "| page | permission | " + " | ".join(roles) + " |"
    rule = "|---|---|" + "---|" * len(roles)
    rows = [
        f"| {page} ({method.upper()}) | {', '.join(f'`{q}`' for q in _needed(perm))} | "
        + " | ".join(codes[page, role] for role in roles)
        + " |"
        for page, method, _, perm in pages
    ]
    return "\n".join([head, rule, *rows])


def test_permissions_matrix(django_user_model, staff_user, plain_user, bare_staff_user):
    world = _world(staff_user)
    pages = _pages(world)
    roles = _roles(django_user_model, staff_user, plain_user, bare_staff_user)
    codes = {}
    for page, method, path, _ in pages:
        for role, user in roles.items():
            codes[page, role] = _code(user, method, path)

    for page, _method, _, _ in pages:
        assert codes[page, "anonymous"] == "302 login", page
        assert codes[page, "staff, no permission"] == "403", page
        for role in ("staff, operations role", "superuser"):
            assert _let_in(codes[page, role]), (page, role, codes[page, role])
        # A customer is refused (403, or 404 where a page hides that the object exists).
        assert codes[page, "customer"] in ("403", "404"), page
    assert len(pages) == 18
    table = _table(pages, roles, codes)

    if os.environ.get("MAILHUB_WRITE_DOCS") == "1":
        text = DOCS.read_text()
        block = f"{START}\n{table}\n{END}"
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), block, text, flags=re.S)
        DOCS.write_text(text)
    documented = DOCS.read_text().split(START)[1].split(END)[0].strip()
    assert documented == table, (
        "docs/reliability.md's Permissions table is out of date: "
        "rerun the test with MAILHUB_WRITE_DOCS=1"
    )


@pytest.mark.parametrize("index", range(18))
def test_each_staff_page_opens_with_its_own_permission_and_no_other(index, bare_staff_user):
    """A staff user with only the page's permission gets in; with every other one, 403."""
    # (len(_pages) is pinned by range(18): a page added to the list must raise it.)
    world = _world(bare_staff_user)
    page, method, path, perm = _pages(world)[index]
    needed = _needed(perm)
    others = [q for q in p.STAFF_PAGE_PERMISSIONS if q not in needed]
    with_others = grant(bare_staff_user, *others)
    assert _code(with_others, method, path) == "403", page
    with_own = grant(
        type(bare_staff_user).objects.create_user("own", "own@mailhub.test", "pw", is_staff=True),
        *needed,
    )
    assert _let_in(_code(with_own, method, path)), page
