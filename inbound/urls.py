from django.urls import path

from . import views

app_name = "inbound"
urlpatterns = [
    path("mail/<int:pk>/", views.detail, name="detail"),
    path("mail/<int:pk>/raw/", views.raw, name="raw"),
    path("mail/<int:pk>/cid/<path:content_id>", views.cid, name="cid"),
]
