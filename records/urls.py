from django.urls import path

from . import views

app_name = "records"
urlpatterns = [
    path("<slug:kind>/", views.record_list, name="list"),
    path("<slug:kind>/new/", views.record_new, name="new"),
    path("<slug:kind>/<int:pk>/", views.record_detail, name="detail"),
]
