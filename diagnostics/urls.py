from django.urls import path, register_converter

from . import views
from .support import KINDS


class KindConverter:
    regex = "|".join(KINDS)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(KindConverter, "supportkind")

app_name = "diagnostics"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("domains/<int:pk>/", views.domain_detail, name="domain"),
    path("support/", views.support_search, name="support_search"),
    path("support/<supportkind:kind>/<int:pk>/", views.support_detail, name="support"),
    path("support/<supportkind:kind>/<int:pk>/eml", views.support_eml, name="support_eml"),
    path(
        "support/<supportkind:kind>/<int:pk>/bundle.txt",
        views.support_bundle,
        name="support_bundle",
    ),
]
