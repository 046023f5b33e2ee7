"""One multi-row ``INSERT ... RETURNING id``, for the listener's hot path.

``QuerySet.bulk_create`` of a handful of rows spends milliseconds of interpreter time building
its statement, and wraps it in a transaction of its own: ``BEGIN``, ``INSERT``, ``COMMIT``,
three round trips. A single ``INSERT`` statement is atomic by itself, so this sends just that,
with each value prepared by its field exactly as ``bulk_create`` would (``auto_now_add``
included). PostgreSQL and SQLite (3.35 or newer) both return the new ids.

On PostgreSQL the statement is bound on the server, binary values as binary: Django's default
client-side binding writes a ``bytea`` into the SQL text as hex, and the listener held five
times the size of every message it stored (docs/reliability.md, "Hostile input").
"""

from collections.abc import Sequence

import psycopg
from django.db import connection
from django.db.models import Model


def rows_insert(objs: Sequence[Model]) -> None:
    """Insert ``objs`` (all of one model, none saved yet) and set their primary keys."""
    if not objs:
        return
    meta = objs[0]._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    row_marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [
        f.get_db_prep_save(f.pre_save(obj, add=True), connection) for obj in objs for f in fields
    ]
    pk = meta.pk
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns}) "
        f"VALUES {', '.join([row_marks] * len(objs))} "
        f"RETURNING {connection.ops.quote_name(pk.column)}"
    )
    if connection.vendor == "postgresql":
        ids = _execute_server_bound(sql, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            ids = [row[0] for row in cursor.fetchall()]
    # Both databases return the rows of a multi-row VALUES in the order given.
    for obj, new_id in zip(objs, ids, strict=True):
        setattr(obj, pk.attname, new_id)
        obj._state.adding = False
        obj._state.db = connection.alias


def _execute_server_bound(sql: str, params: list) -> list:
    # A plain psycopg cursor binds on the server: a bytea parameter (psycopg.Binary, what
    # BinaryField prepares) is sent in binary format, as it is.
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]
