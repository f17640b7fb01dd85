"""`field__any=[...]`: membership in a list passed as one array parameter on PostgreSQL.

`field__in` with hundreds of values sends hundreds of parameters: Django prepares each one,
and psycopg parses a statement text that differs with every list length. Distribution
batches of 1,000 leads paid more for that than for the statements themselves. `= ANY(%s)`
is one parameter and one statement text; other databases get `IN`.
"""

import re

from django.db.models import Field, ForeignObject, Lookup, Model
from django.db.models.lookups import In


# ForeignObject lists its lookups from its own class up, so Field's do not reach foreign keys.
@ForeignObject.register_lookup
@Field.register_lookup
class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False

    def get_prep_lookup(self):
        if not isinstance(self.rhs, list | tuple | set | frozenset):
            raise TypeError(f"__any takes a list of values, not {type(self.rhs).__name__}")
        # Like __in: None matches nothing, and a model instance stands for its primary key.
        return [value.pk if isinstance(value, Model) else value for value in self.rhs if value is not None]

    def as_sql(self, compiler, connection):
        return In(self.lhs, self.rhs).as_sql(compiler, connection)

    def as_postgresql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection, prepared=False) for value in self.rhs]
        # The array has the column's type without its size (a cast to varchar(5) would cut a
        # longer value down to a match), so the column's index serves the lookup.
        base_type = re.sub(r"\(.*\)", "", field.cast_db_type(connection))
        return f"{lhs} = ANY(%s::{base_type}[])", [*lhs_params, values]
