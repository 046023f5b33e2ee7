"""``field__any_of=[...]``: an ``IN`` list that costs one parameter on PostgreSQL.

The queue filters by batches of hundreds of ids. ``__in`` sends one placeholder per id, and the
driver re-parses such a query on every call (it caches only queries of 50 parameters or fewer):
more interpreter time than the database spends on the statement. ``__any_of`` sends the ids as
one array literal, ``= ANY(%s::bigint[])``, a query the driver parses once. Other databases get
a plain ``IN``.
"""

from django.core.exceptions import EmptyResultSet
from django.db import models
from django.db.models import Lookup


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        # Integers only (ids): converting each one through the field is the cost avoided here.
        return [int(v) for v in self.rhs]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = self.rhs
        if not values:
            raise EmptyResultSet  # no row matches; an empty array would also lack a type
        if connection.vendor == "postgresql":
            # An array literal built with one join: the driver's list adaptation costs a
            # Python call per element. The values are integers (get_prep_lookup).
            literal = "{" + ",".join(map(str, values)) + "}"
            return f"{lhs} = ANY(%s::bigint[])", [*lhs_params, literal]
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]


def lookups_register() -> None:
    models.IntegerField.register_lookup(AnyOf)  # ids (AutoField, BigAutoField) and integers
    models.ForeignKey.register_lookup(AnyOf)
