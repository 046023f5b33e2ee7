"""STARTTLS on the listener (RFC 3207) with a real TLS client on loopback."""

import smtplib
import ssl

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inbound.models import InboundMail
from inbound.tls import tls_self_signed_create
from tests.support.inbound import build_mail, wait_processed

pytestmark = pytest.mark.django_db(transaction=True)


def test_starttls_is_offered_and_mail_arrives_over_it(
    settings, tmp_path, mail_domain, inbound_listener
):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls_self_signed_create(cert=cert, key=key, hostname="127.0.0.1")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    settings.MAILHUB_SMTPD_TLS_CERT, settings.MAILHUB_SMTPD_TLS_KEY = str(cert), str(key)
    controller = inbound_listener()
    client_context = ssl.create_default_context(cafile=str(cert))  # verifies our certificate
    with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
        client.ehlo("sender.test")
        assert client.has_extn("starttls")
        code, _ = client.starttls(context=client_context)
        assert code == 220
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.ehlo("sender.test")
        assert not client.has_extn("starttls"), "offered once, not inside TLS (RFC 3207 §4.2)"
        assert client.send_message(build_mail(message_id="<tls-1@customer.test>")) == {}
    wait_processed()
    assert InboundMail.objects.get().message_id == "<tls-1@customer.test>"


def test_no_certificate_no_starttls_and_a_bad_one_stops_the_start(
    settings, tmp_path, mail_domain, inbound_listener
):
    settings.DEBUG = False
    settings.MAILHUB_SMTPD_TLS_CERT = settings.MAILHUB_SMTPD_TLS_KEY = ""
    controller = inbound_listener()
    with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
        client.ehlo("sender.test")
        assert not client.has_extn("starttls")
    missing = tmp_path / "missing.pem"
    settings.MAILHUB_SMTPD_TLS_CERT, settings.MAILHUB_SMTPD_TLS_KEY = str(missing), str(missing)
    with pytest.raises(CommandError, match="Cannot load the TLS certificate"):
        call_command("runsmtpd", "--listen", "127.0.0.1:1")


def test_the_quick_start_gets_a_self_signed_pair_under_var(settings, tmp_path, inbound_listener):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    settings.MAILHUB_SMTPD_TLS_CERT = settings.MAILHUB_SMTPD_TLS_KEY = ""
    controller = inbound_listener()
    assert (tmp_path / "tls" / "smtpd-cert.pem").exists()
    unverified = ssl._create_unverified_context()  # as sending MTAs do (RFC 7435)
    with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
        client.ehlo("sender.test")
        assert client.starttls(context=unverified)[0] == 220
        assert client.noop()[0] == 250
