from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("devrelay/", views.devrelay_mailbox, name="devrelay"),
    path("chatter/", include("chatter.urls")),
    path("failures/", include("chatter.failure_urls")),
    path("contacts/", include("chatter.contact_urls")),
    path("records/", include("records.urls")),
    path("outbox/", include("outbox.urls")),
    path("inbound/", include("inbound.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("ops/", include("diagnostics.urls")),
]
