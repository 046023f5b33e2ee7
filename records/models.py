"""Demo business records, each with a chatter."""

from django.conf import settings
from django.db import models
from django.urls import reverse

from chatter.models import ChatterMixin


class Record(ChatterMixin):
    title = models.CharField(max_length=255)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # The record type's slug in URLs: /records/<slug>/<pk>/.
    slug = ""
    # The page the chatter shows again with a form's errors (see chatter.views).
    chatter_page_template = "records/detail.html"

    class Meta:
        abstract = True
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self._meta.verbose_name.title()} #{self.pk}: {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("records:detail", args=[self.slug, self.pk])


class Ticket(Record):
    slug = "ticket"
    STATES = [("new", "New"), ("open", "In progress"), ("closed", "Closed")]
    state = models.CharField(max_length=10, choices=STATES, default="new")


class Quote(Record):
    slug = "quote"
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)


class Invoice(Record):
    slug = "invoice"
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    paid = models.BooleanField(default=False)


RECORD_TYPES = {model.slug: model for model in (Ticket, Quote, Invoice)}
