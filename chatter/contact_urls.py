"""URLs of the address book (contact pages, bounce and blacklist state)."""

from django.urls import path

from . import contact_views

app_name = "contacts"
urlpatterns = [
    path("", contact_views.contact_list, name="list"),
    path("<int:pk>/", contact_views.contact_detail, name="detail"),
    path("<int:pk>/unblacklist/", contact_views.contact_unblacklist, name="unblacklist"),
    path("<int:pk>/blacklist/", contact_views.contact_blacklist, name="blacklist"),
]
