"""manage.py inbound_bodies_rebuild: sanitise posted mail bodies again from their source."""

from django.core.management.base import BaseCommand

from inbound.bodies import inbound_bodies_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the shown body of every posted inbound mail from its stored .eml with the "
        "current sanitiser (after an upgrade that blocks more remote content)."
    )

    def handle(self, *args, **options):
        count = inbound_bodies_rebuild()
        self.stdout.write(f"{count} posted mail bodies rebuilt from their source.")
