"""PostgreSQL refuses connections for a while: nobody sees a traceback, nothing is lost.

The database is reached through a loopback proxy that the test switches to ``refuse`` (the port
is closed, as when PostgreSQL is down or restarting) and back to ``forward``; the machine's own
PostgreSQL is never touched.
"""

import pytest

from tests.support.e2e import database_port, database_url_via, postgres_only

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def db_proxy(loopback_proxy, e2e_stack):
    postgres_only()
    proxy = loopback_proxy(database_port())
    e2e_stack.database_url = database_url_via(proxy.port)
    return proxy


def test_web_shows_an_error_page_not_a_traceback_while_the_database_is_down(
    e2e_stack, db_proxy, staff_user
):
    e2e_stack.web()
    web = e2e_stack.web_client()
    web.login("staff", "staff-password")
    assert web.get("/records/ticket/").status == 200

    db_proxy.set_mode("refuse")
    down = web.get("/records/ticket/")
    health = web.get("/healthz")

    assert down.status == 500
    for leak in ("Traceback", "OperationalError", "psycopg", 'File "', "settings.py"):
        assert leak not in down.text, f"the error page shows {leak!r}"
    assert "Server Error" in down.text or "error" in down.text.lower()
    # Who asks cannot be checked without the database: the public answer, down and nothing more.
    assert health.status == 503 and health.text.strip() == '{"status": "down"}'

    # Back up: the same process serves again, no restart, the session survived.
    db_proxy.set_mode("forward")
    assert web.get("/records/ticket/").status == 200
    assert '"database": {\n  "ok": true' in web.get("/healthz").text
