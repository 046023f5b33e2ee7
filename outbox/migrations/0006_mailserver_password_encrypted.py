"""Relay passwords encrypted at rest: the column becomes text (a Fernet token is longer than
255 characters), the stored passwords are encrypted, then the field reads and writes tokens."""

from django.db import migrations, models

import mailhub.encryption


def encrypt_existing(apps, schema_editor):
    # The historical model has a plain TextField at this step: values come and go as stored.
    MailServer = apps.get_model("outbox", "MailServer")
    for server in MailServer.objects.exclude(password="").only("id", "password"):
        token = mailhub.encryption.secret_encrypt(plaintext=server.password)
        MailServer.objects.filter(pk=server.pk).update(password=token)


def decrypt_existing(apps, schema_editor):
    MailServer = apps.get_model("outbox", "MailServer")
    for server in MailServer.objects.exclude(password="").only("id", "password"):
        plaintext = mailhub.encryption.secret_decrypt(token=server.password)
        MailServer.objects.filter(pk=server.pk).update(password=plaintext)


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0005_queue_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="mailserver",
            name="password",
            field=models.TextField(blank=True),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
        migrations.AlterField(
            model_name="mailserver",
            name="password",
            field=mailhub.encryption.EncryptedTextField(blank=True),
        ),
    ]
