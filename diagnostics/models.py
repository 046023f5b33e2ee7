"""Models of this app: only the permissions of the operations pages (no table)."""

from django.db import models


class Operations(models.Model):
    """Holds the permissions of the staff pages outside the admin that have no model of their own.

    Django keeps permissions on a model; this one has no table (``managed = False``).
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_operations", "Can see the operations dashboard, domain checks, dev relay"),
            ("export_support", "Can open support cases and download their mail and bundles"),
        ]
