"""manage.py seed_demo: demo data for a first start (idempotent: a second run reuses it)."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand
from django.db import transaction

from chatter.services import contact_for_user, contact_get_or_create, follower_add, message_post
from inbound.models import Alias, AliasDomain
from records.models import Invoice, Quote, Ticket

DEMO_CONTACTS = [
    ("Alice Martin", "alice@customer.test"),
    ("Bruno Keller", "bruno@customer.test"),
    ("Nobody Home", "nobody@reject.test"),  # the dev relay refuses @reject.test with 550
    ("Dana Later", "dana@defer.test"),  # the dev relay defers @defer.test with 451
]


class Command(BaseCommand):
    help = "Create the demo data: admin user, contacts, records, alias domain mailhub.test."

    def _admin_password(self) -> str:
        path = settings.VAR_DIR / "admin-password.txt"
        if path.exists():
            return path.read_text().strip()
        password = secrets.token_urlsafe(12)
        path.write_text(password + "\n")
        path.chmod(0o600)
        return password

    def _seed_campaigns(self, *, admin, contacts) -> None:
        """A demo mailing list of the demo contacts and a draft campaign for it."""
        from campaigns.models import Campaign, ListMember, MailingList

        newsletter, _ = MailingList.objects.get_or_create(
            name="Newsletter", defaults={"description": "Demo list: the demo customers."}
        )
        ListMember.objects.bulk_create(
            [ListMember(mailing_list=newsletter, contact=c) for c in contacts],
            ignore_conflicts=True,
        )
        if not Campaign.objects.exists():
            campaign = Campaign.objects.create(
                subject="What's new at MailHub this month",
                body_html="<p>Hello,</p><p>Our spring catalogue is out. "
                '<a href="https://example.com/catalogue">Have a look</a>.</p>',
                created_by=admin,
            )
            campaign.mailing_lists.set([newsletter])

    def _seed_bounces(self) -> None:
        """A contact that bounces and one blacklisted by the 5-in-13-weeks rule (contact pages)."""
        import datetime as dt

        from django.utils import timezone

        from chatter.suppression import contact_bounce_record

        now = timezone.now()
        reason = "Diagnostic-Code: smtp; 550 5.1.1 <{}>: Recipient address rejected: User unknown"
        for name, email, weeks in (
            ("Hugo Hops", "hugo@bounce.test", [1]),
            ("Gina Gone", "gina@bounce.test", [9, 7, 5, 3, 1]),
        ):
            contact = contact_get_or_create(email=email, name=name)
            if contact.bounce_events.exists():
                continue
            for week in weeks:
                contact = contact_bounce_record(
                    contact=contact,
                    hard=True,
                    status="5.1.1",
                    reason=reason.format(email),
                    at=now - dt.timedelta(weeks=week),
                )

    @transaction.atomic
    def handle(self, *args, **options):
        user_model = get_user_model()
        password = self._admin_password()
        admin, created = user_model.objects.get_or_create(
            username="admin",
            defaults={
                "email": "admin@mailhub.test",
                "first_name": "Ada",
                "last_name": "Admin",
                "is_staff": True,
                "is_superuser": True,
            },
        )
        if created:
            admin.set_password(password)
            admin.save()
        admin_contact = contact_for_user(user=admin)

        domain, _ = AliasDomain.objects.get_or_create(domain="mailhub.test")
        for local, model in (("support", Ticket), ("sales", Quote)):
            Alias.objects.get_or_create(
                domain=domain,
                local_part=local,
                defaults={"model": ContentType.objects.get_for_model(model)},
            )
        contacts = [contact_get_or_create(email=email, name=name) for name, email in DEMO_CONTACTS]
        alice, bruno, nobody, _dana = contacts

        if not Ticket.objects.exists():
            ticket = Ticket.objects.create(title="Printer on the 2nd floor jams", created_by=admin)
            follower_add(record=ticket, contact=admin_contact, ignore_existing=True)
            follower_add(record=ticket, contact=alice)
            message_post(
                record=ticket,
                author=admin_contact,
                subject="We are on it",
                body="<p>Hello Alice, a technician comes by tomorrow morning.</p>",
            )
            quote = Quote.objects.create(title="50 office chairs", amount=7450, created_by=admin)
            follower_add(record=quote, contact=admin_contact, ignore_existing=True)
            follower_add(record=quote, contact=bruno)
            message_post(
                record=quote,
                author=admin_contact,
                subtype_code="note",
                body="<p>Internal: Bruno asked for a 5% discount.</p>",
            )
            invoice = Invoice.objects.create(title="INV/2026/0001", amount=1200, created_by=admin)
            follower_add(record=invoice, contact=admin_contact, ignore_existing=True)
            follower_add(record=invoice, contact=nobody)
            # Its recipient is refused by the dev relay: the first start shows a red envelope.
            message_post(
                record=invoice,
                author=admin_contact,
                subject="Your invoice",
                body="<p>Please find your invoice INV/2026/0001 attached.</p>",
            )
            self.stdout.write("Demo records created: 1 ticket, 1 quote, 1 invoice.")
        else:
            self.stdout.write("Demo data already present: reused.")
        self._seed_campaigns(admin=admin, contacts=contacts)
        self._seed_bounces()
        self.stdout.write(f"Admin login: admin / {password}")
