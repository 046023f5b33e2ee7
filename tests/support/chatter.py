"""Chatter fixtures shared by every area: factories and a real Chromium on the live server.

Browser fixtures:

- ``browser`` (module): one launched Chromium (the system one at /usr/bin/chromium, else a
  browser installed by ``playwright install chromium``). Module, not session, scope: Playwright's
  sync API keeps an event loop running in the main thread while it is started, so a session-wide
  instance would break any later test module that starts its own ``sync_playwright()``.
- ``login_page(user, password)`` (factory): a new Playwright page, logged in through the real
  login form of ``live_server``; ``user`` is a User or a username. Contexts are closed at teardown.

Tests using them need committed data the live server can see:
``pytest.mark.django_db(transaction=True)``.
"""

import os
from pathlib import Path

import factory
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from chatter.models import Contact, NotificationPreference
from mailhub.permissions import STAFF_PAGE_PERMISSIONS
from records.models import Invoice, Quote, Ticket

SYSTEM_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Where browser tests save what they saw (gitignored; CI keeps it as an artifact).
TEST_RESULTS = Path(__file__).resolve().parents[2] / "test-results"
DOC_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot_dir() -> Path:
    """Where browser tests save the pictures the docs show: ``docs/screenshots`` when asked
    (``MAILHUB_WRITE_DOCS=1 ./run test tests/browser``), else the gitignored ``test-results/``,
    so an ordinary test run leaves the work tree as it found it."""
    folder = DOC_SCREENSHOTS if os.environ.get("MAILHUB_WRITE_DOCS") == "1" else TEST_RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- factories ----------------------------------------------------------------------------------


class UserFactory(factory.django.DjangoModelFactory):
    """A user whose password is "password" unless ``password=`` is given."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = "password"
    is_staff = False

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # create_user hashes the password, so the login form accepts it.
        return model_class.objects.create_user(*args, **kwargs)


class StaffFactory(UserFactory):
    """An internal user with every permission the staff pages check (``permissions=[]``: none)."""

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True

    @factory.post_generation
    def permissions(self, create, extracted, **kwargs):
        names = STAFF_PAGE_PERMISSIONS if extracted is None else extracted
        for name in names:
            app_label, codename = name.split(".")
            self.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


class ContactFactory(factory.django.DjangoModelFactory):
    """A customer contact (no user) unless ``user=`` is given."""

    class Meta:
        model = Contact

    name = factory.Sequence(lambda n: f"Contact {n}")
    email = factory.Sequence(lambda n: f"contact{n}@customer.test")
    notification_preference = NotificationPreference.EMAIL


class RecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    title = factory.Sequence(lambda n: f"Record {n}")


class TicketFactory(RecordFactory):
    class Meta:
        model = Ticket

    title = factory.Sequence(lambda n: f"Printer on fire #{n}")


class QuoteFactory(RecordFactory):
    class Meta:
        model = Quote

    amount = 100


class InvoiceFactory(RecordFactory):
    class Meta:
        model = Invoice

    amount = 100


@pytest.fixture
def user_factory():
    return UserFactory


@pytest.fixture
def contact_factory():
    return ContactFactory


@pytest.fixture
def ticket_factory():
    return TicketFactory


# --- browser ------------------------------------------------------------------------------------


def _chromium_executable(playwright) -> str | None:
    """The system Chromium, else Playwright's own download, else None."""
    if SYSTEM_CHROMIUM.exists():
        return str(SYSTEM_CHROMIUM)
    bundled = playwright.chromium.executable_path
    return bundled if bundled and Path(bundled).exists() else None


@pytest.fixture(scope="module")
def browser():
    """A real Chromium for the test module (Playwright sync API)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; Django would then refuse the ORM
    # calls the test makes itself (SynchronousOnlyOperation). They stay synchronous, so allow them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    playwright = sync_playwright().start()
    try:
        executable = _chromium_executable(playwright)
        if executable is None:
            pytest.skip(
                "No Chromium found: install it with `apt-get install -y chromium` "
                "(or `.venv/bin/playwright install chromium`) to run the browser tests."
            )
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def login_page(browser, live_server):
    """Factory: ``login_page(user, password)`` → a Playwright page logged in on live_server."""
    contexts = []

    def login(user, password: str, *, viewport: tuple[int, int] = (1280, 900)):
        username = user if isinstance(user, str) else user.get_username()
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        with page.expect_navigation():
            page.click("button[type=submit]")
        if "/login/" in page.url:
            raise AssertionError(f"login as {username!r} failed: still on {page.url}")
        return page

    yield login
    for context in contexts:
        context.close()


@pytest.fixture
def test_results_dir() -> Path:
    """The gitignored folder browser tests save screenshots into."""
    TEST_RESULTS.mkdir(parents=True, exist_ok=True)
    return TEST_RESULTS


# --- bulk helpers (query-count tests and the fan-out bench use the same shapes) -----------------


def followers_bulk_create(*, record, count: int, prefix: str = "f", subtype_codes=("discussion",)):
    """``count`` customer contacts following ``record`` on the given subtypes, in bulk."""
    from django.contrib.contenttypes.models import ContentType

    from chatter.models import Follower, Subtype

    ct = ContentType.objects.get_for_model(record)
    contacts = Contact.objects.bulk_create(
        [Contact(name=f"{prefix} {i}", email=f"{prefix}{i}@bulk.test") for i in range(count)]
    )
    followers = Follower.objects.bulk_create(
        [Follower(content_type=ct, object_id=record.pk, contact=c) for c in contacts]
    )
    subtypes = list(Subtype.objects.filter(code__in=subtype_codes))
    through = Follower.subtypes.through
    through.objects.bulk_create(
        [through(follower_id=f.pk, subtype_id=s.pk) for f in followers for s in subtypes]
    )
    return contacts
