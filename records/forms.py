"""Create forms of the demo records (one per record type, its own fields but the audit ones)."""

from django import forms

from .models import Record

EXCLUDED = ("created_by", "created_at")


def record_form_class(model: type[Record]) -> type[forms.ModelForm]:
    fields = [
        f.name
        for f in model._meta.concrete_fields
        if f.editable and not f.primary_key and f.name not in EXCLUDED
    ]
    return forms.modelform_factory(model, fields=fields)
