from django.db import migrations


def create_subtypes(apps, schema_editor):
    Subtype = apps.get_model("chatter", "Subtype")
    Subtype.objects.update_or_create(
        code="discussion", defaults={"name": "Discussions", "internal": False, "default": True}
    )
    Subtype.objects.update_or_create(
        code="note", defaults={"name": "Note", "internal": True, "default": False}
    )


class Migration(migrations.Migration):
    dependencies = [("chatter", "0002_initial")]
    operations = [migrations.RunPython(create_subtypes, migrations.RunPython.noop)]
