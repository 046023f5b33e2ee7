"""``__any_of``: the queue's id filter gives the same rows as ``__in`` on both databases."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from outbox.models import MailRecipient, OutgoingMail
from tests.support.outbox import enqueue

pytestmark = pytest.mark.django_db


def test_any_of_matches_exactly_the_ids_given():
    mails = enqueue(5)
    wanted = [mails[0].pk, mails[3].pk, mails[4].pk]
    got = set(OutgoingMail.objects.filter(pk__any_of=wanted).values_list("pk", flat=True))
    assert got == set(wanted)
    by_fk = MailRecipient.objects.filter(mail_id__any_of=wanted)
    assert {r.mail_id for r in by_fk} == set(wanted)


def test_an_empty_list_matches_nothing_without_a_query():
    enqueue(2)
    with CaptureQueriesContext(connection) as queries:
        assert list(OutgoingMail.objects.filter(pk__any_of=[])) == []
        assert OutgoingMail.objects.filter(pk__any_of=[]).update(subject="x") == 0
    assert len(queries) == 0


def test_hundreds_of_ids_are_one_array_on_postgresql_and_an_in_list_elsewhere():
    mails = enqueue(300)
    with CaptureQueriesContext(connection) as queries:
        count = OutgoingMail.objects.filter(pk__any_of=[m.pk for m in mails]).count()
    assert count == 300
    sql = queries[0]["sql"]
    if connection.vendor == "postgresql":
        assert "= ANY('{" in sql and "::bigint[]" in sql
    else:
        assert " IN (" in sql
