from django.urls import path

from . import views

app_name = "chatter"
urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/<int:notification_id>/read/", views.inbox_mark_read, name="inbox_mark_read"),
    path("inbox/read-all/", views.inbox_mark_all_read, name="inbox_mark_all_read"),
    path("preferences/", views.preferences, name="preferences"),
    path("profile/", views.profile, name="profile"),
    path("attachments/<int:pk>/", views.attachment, name="attachment"),
    path("contacts/search/", views.contact_search, name="contact_search"),
    path("<int:ct>/<int:pk>/post/", views.message_post, name="post"),
    path("<int:ct>/<int:pk>/live/", views.thread_live, name="live"),
    path("<int:ct>/<int:pk>/follow/", views.follow_toggle, name="follow_toggle"),
    path("<int:ct>/<int:pk>/followers/add/", views.follower_add, name="follower_add"),
    path(
        "<int:ct>/<int:pk>/followers/<int:follower_id>/remove/",
        views.follower_remove,
        name="follower_remove",
    ),
    path(
        "<int:ct>/<int:pk>/followers/<int:follower_id>/subtypes/",
        views.follower_subtypes,
        name="follower_subtypes",
    ),
]
