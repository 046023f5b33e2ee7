"""Django system checks for MailHub's configuration.

``mailhub.W001``: a staff user's email is a placeholder; ``mailhub.W002``: the default sender
(``MAILHUB_DEFAULT_FROM``) is a placeholder. Both are warnings: the app runs, but mail sent from
those addresses is refused by relays or lost (seed: "Changing the email address of the admin
user account").
"""

from django.conf import settings
from django.core.checks import Warning, register
from django.db import DatabaseError, transaction


@register("mailhub")
def placeholder_addresses(app_configs=None, **kwargs) -> list[Warning]:
    from diagnostics.placeholders import default_from_is_placeholder, staff_with_placeholder_email

    warnings: list[Warning] = []
    try:
        # A savepoint keeps a PostgreSQL transaction usable if the table is not migrated yet.
        with transaction.atomic():
            users = staff_with_placeholder_email()
    except DatabaseError:
        users = []  # before `migrate`: nothing to check yet
    for user in users:
        warnings.append(
            Warning(
                f"Staff user '{user.username}' has the placeholder email address "
                f"'{user.email or '(empty)'}'.",
                hint=(
                    "Set a real address: Admin → Users → "
                    f"{user.username} → Email address (or `manage.py shell`: "
                    "user.email = 'you@your-domain'; user.save()). Mail from or to a "
                    "placeholder is refused or lost."
                ),
                obj=f"user {user.username}",
                id="mailhub.W001",
            )
        )
    if default_from_is_placeholder():
        warnings.append(
            Warning(
                f"The default sender MAILHUB_DEFAULT_FROM='{settings.MAILHUB_DEFAULT_FROM}' is a "
                "placeholder address.",
                hint=(
                    "Set MAILHUB_DEFAULT_FROM in the environment to an address on your mail "
                    "domain (e.g. notifications@your-domain) and restart the web and worker "
                    "processes."
                ),
                obj="settings.MAILHUB_DEFAULT_FROM",
                id="mailhub.W002",
            )
        )
    return warnings
