from django.urls import path

from . import views

app_name = "campaigns"
urlpatterns = [
    path("", views.campaign_index, name="index"),
    path("new/", views.campaign_new, name="new"),
    path("<int:pk>/", views.campaign_detail, name="detail"),
    path("<int:pk>/edit/", views.campaign_edit, name="edit"),
    path("<int:pk>/send/", views.campaign_send, name="send"),
    path("<int:pk>/schedule/", views.campaign_schedule, name="schedule"),
    path("<int:pk>/cancel/", views.campaign_cancel, name="cancel"),
    path("<int:pk>/progress.json", views.campaign_progress, name="progress"),
    path("lists/", views.list_index, name="lists"),
    path("lists/<int:pk>/", views.list_detail, name="list_detail"),
    path("lists/<int:pk>/add/", views.list_member_add, name="list_add"),
    path("lists/<int:pk>/import/", views.list_import, name="list_import"),
    path(
        "lists/<int:pk>/members/<int:member_id>/remove/",
        views.list_member_remove,
        name="list_remove",
    ),
    # No login: the links in the mail. The page confirms with a form; the one-click endpoint
    # is what RFC 8058 clients POST to.
    path("unsubscribe/<str:token>/", views.unsubscribe_page, name="unsubscribe"),
    path(
        "unsubscribe/<str:token>/one-click/",
        views.unsubscribe_one_click,
        name="unsubscribe_one_click",
    ),
]
