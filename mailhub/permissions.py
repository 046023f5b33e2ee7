"""Which Django permission each staff page outside the admin needs, and the decorator that checks.

``is_staff`` only says "may log in to the admin"; what a staff member may see and do is their
permissions (a superuser has them all). A page refuses a logged-in user without the permission
with 403, and sends an anonymous visitor to the login page.
"""

from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.contrib.auth.decorators import permission_required as django_permission_required

OPERATIONS = "diagnostics.view_operations"
SUPPORT = "diagnostics.export_support"
RAW_MAIL = "inbound.view_inboundmail"
CONTACTS_VIEW = "chatter.view_contact"
CONTACTS_CHANGE = "chatter.change_contact"
CAMPAIGNS_VIEW = "campaigns.view_campaign"
CAMPAIGNS_ADD = "campaigns.add_campaign"
CAMPAIGNS_CHANGE = "campaigns.change_campaign"
LISTS_VIEW = "campaigns.view_mailinglist"
LISTS_CHANGE = "campaigns.change_mailinglist"

# Every permission a staff page checks: what a full staff role (a group) is given.
STAFF_PAGE_PERMISSIONS = (
    OPERATIONS,
    SUPPORT,
    RAW_MAIL,
    CONTACTS_VIEW,
    CONTACTS_CHANGE,
    CAMPAIGNS_VIEW,
    CAMPAIGNS_ADD,
    CAMPAIGNS_CHANGE,
    LISTS_VIEW,
    LISTS_CHANGE,
)


def page_permission_required(perm: str) -> Callable:
    """Login first (else the login page), then ``perm`` (else 403)."""

    def decorate(view: Callable) -> Callable:
        return login_required(django_permission_required(perm, raise_exception=True)(view))

    return decorate
