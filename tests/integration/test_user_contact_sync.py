"""A user's email and their contact are one address, however the user is changed."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from chatter.models import Contact, NotificationPreference
from chatter.services import contact_for_user, follower_add, message_post
from tests.support.chatter import ContactFactory, TicketFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def anna():
    user = get_user_model().objects.create_user(
        "anna", "anna@old-shop.test", "pw", is_staff=True, first_name="Anna", last_name="Berg"
    )
    contact_for_user(user=user)
    return user


def test_shell_save_moves_the_contact_and_the_next_notification(anna, relay):
    anna.email = "Anna@New-Shop.test"
    anna.save()
    assert Contact.objects.get(user=anna).email == "anna@new-shop.test"
    assert not Contact.objects.filter(email="anna@old-shop.test").exists()

    # Where her notifications go: the new address.
    ticket = TicketFactory(title="Printer")
    follower_add(record=ticket, contact=Contact.objects.get(user=anna))
    message = message_post(record=ticket, author=None, body="<p>hello</p>")
    assert list(message.notifications.values_list("contact__email", flat=True)) == [
        "anna@new-shop.test"
    ]


def test_login_writes_cost_no_sync(anna, django_assert_num_queries):
    with django_assert_num_queries(1):
        anna.save(update_fields=["last_login"])


def test_an_address_of_another_contact_is_refused_before_the_write(anna):
    ContactFactory(name="Carla Customer", email="carla@customer.test")
    anna.email = "carla@customer.test"
    with pytest.raises(ValidationError, match="Carla Customer"):
        anna.save()
    anna.refresh_from_db()
    assert anna.email == "anna@old-shop.test"
    assert Contact.objects.get(user=anna).email == "anna@old-shop.test"


def test_admin_users_form_moves_the_contact_and_says_no_to_a_taken_address(client, anna):
    admin = get_user_model().objects.create_superuser("root", "root@shop.test", "pw")
    client.force_login(admin)
    url = f"/admin/auth/user/{anna.pk}/change/"
    form = {
        "username": "anna",
        "first_name": "Anna",
        "last_name": "Lind",
        "email": "anna@lind.test",
        "is_active": "on",
        "is_staff": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "10:00:00",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    contact = Contact.objects.get(user=anna)
    assert (contact.email, contact.name) == ("anna@lind.test", "Anna Lind")

    ContactFactory(name="Carla Customer", email="carla@customer.test")
    response = client.post(url, {**form, "email": "carla@customer.test"})
    assert response.status_code == 200
    assert "already the address of the contact “Carla Customer”" in response.content.decode()
    assert Contact.objects.get(user=anna).email == "anna@lind.test"


def test_my_profile_saves_name_email_and_preference(client, anna):
    client.force_login(anna)
    page = client.get("/chatter/profile/").content.decode()
    assert "My Profile" in page and 'value="anna@old-shop.test"' in page
    response = client.post(
        "/chatter/profile/",
        {
            "first_name": "Anna",
            "last_name": "Lind",
            "email": "anna@lind.test",
            "notification_preference": "inbox",
        },
    )
    assert response.status_code == 302
    contact = Contact.objects.get(user=anna)
    assert (contact.email, contact.name) == ("anna@lind.test", "Anna Lind")
    assert contact.notification_preference == NotificationPreference.INBOX
    assert "Messages go to anna@lind.test" in client.get("/chatter/preferences/").content.decode()


@pytest.mark.parametrize(
    "email,words",
    [
        ("anna@example.org", "placeholder address"),
        ("anna@shop.localhost", "placeholder address"),
        ("anna@mailhost", "is not an email address"),
        ("not an address", "is not an email address"),
    ],
)
def test_my_profile_refuses_bad_addresses_and_keeps_the_typing(client, anna, email, words):
    client.force_login(anna)
    response = client.post(
        "/chatter/profile/",
        {"first_name": "Anni", "last_name": "", "email": email, "notification_preference": "email"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert words in page and 'value="Anni"' in page
    assert Contact.objects.get(user=anna).email == "anna@old-shop.test"


def test_customers_cannot_pick_the_inbox_in_my_profile(client):
    carla = get_user_model().objects.create_user("carla", "carla@customer.test", "pw")
    client.force_login(carla)
    response = client.post(
        "/chatter/profile/",
        {
            "first_name": "",
            "last_name": "",
            "email": "carla@customer.test",
            "notification_preference": "inbox",
        },
    )
    assert response.status_code == 400
    assert "Only internal users" in response.content.decode()
