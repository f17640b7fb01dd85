"""`field__any=[...]`: membership in a list passed as one array parameter on PostgreSQL.

`field__in` with hundreds of values sends hundreds of parameters: Django prepares each one,
and psycopg parses a statement text that differs with every list length. Distribution
batches of 500 leads paid more for that than for the statements themselves. `= ANY(%s)`
is one parameter and one statement text; other databases get `IN`.
"""

from django.db.models import Field, ForeignObject, Lookup
from django.db.models.lookups import In


@ForeignObject.register_lookup  # foreign keys keep lookups of their own
@Field.register_lookup
class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        return In(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection, prepared=False) for value in self.rhs]
        # The array's type is the column's, so that the column's index serves the lookup.
        return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", [*lhs_params, values]
