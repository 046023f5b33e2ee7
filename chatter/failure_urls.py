"""URLs of delivery failures: the envelope, the Sending Failures dialog, the failures counter."""

from django.urls import path

from . import failure_views

app_name = "failures"
urlpatterns = [
    path("", failure_views.failure_list, name="list"),
    path("envelopes/", failure_views.envelopes, name="envelopes"),
    path("message/<int:message_id>/", failure_views.message_dialog, name="dialog"),
    path("message/<int:message_id>/resend/", failure_views.message_resend, name="resend"),
    path("message/<int:message_id>/ignore/", failure_views.message_ignore, name="ignore"),
    path("record/<int:ct>/<int:pk>/ignore/", failure_views.record_ignore, name="record_ignore"),
]
