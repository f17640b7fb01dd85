"""Inserts without the ORM's per-object work: COPY of plain rows for the batch paths
(distribution's offers and notifications), and single-row INSERTs built once per model for
the webhook.

Bulk: COPY of plain rows instead of `bulk_create`.

`bulk_create` builds a model instance per row, compiles the statement in Python and dumps
every column as an array; for hundreds of offers and notifications per batch that was most
of distribution's CPU. Here the caller gives tuples of values, the primary keys come from
the table's sequence in one query, then the rows are streamed with COPY. Other databases
fall back to `bulk_create`.
"""

import functools
from collections.abc import Sequence

from django.db import DEFAULT_DB_ALIAS, connections, models


def copy_rows(model, names: Sequence[str], rows: list[tuple]) -> list[int]:
    """Inserts `rows` (values of the fields `names`, in that order) into `model`'s table and
    returns their new primary keys in row order. The other fields get their defaults (a
    callable default is called for each row); values are prepared as `Model.save` prepares
    them. Models with `auto_now`, `auto_now_add` or `db_default` fields are refused: their
    values come from `pre_save` or the database, which this path does not run."""
    if not rows:
        return []
    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, not the thread-local proxy
    meta = model._meta
    pk = meta.pk
    for field in meta.concrete_fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False) or field.has_db_default():
            raise ValueError(f"copy_rows cannot fill {model.__name__}.{field.name} (auto_now or db_default)")
    given = [meta.get_field(name) for name in names]
    if connection.vendor != "postgresql":
        objs = model.objects.bulk_create([model(**dict(zip(names, row, strict=True))) for row in rows])
        return [obj.pk for obj in objs]
    omitted = [field for field in meta.concrete_fields if field is not pk and field not in given]
    # A field without a default has NOT_PROVIDED there, a class: callable, yet its default
    # (None or "") is a constant.
    per_row = [field for field in omitted if field.has_default() and callable(field.default)]
    constant = [field for field in omitted if field not in per_row]
    constant_values = [field.get_db_prep_save(field.get_default(), connection) for field in constant]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in [pk, *given, *constant, *per_row])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
            [_sequence_of(meta.db_table, pk.column), len(rows)],
        )
        ids = [new_id for (new_id,) in cursor.fetchall()]
        prepare = _preparer(given, connection)
        raw = cursor.cursor  # psycopg's own cursor: COPY is not part of Django's cursor API
        with raw.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for new_id, row in zip(ids, rows, strict=True):
                fresh = [field.get_db_prep_save(field.get_default(), connection) for field in per_row]
                copy.write_row([new_id, *prepare(row), *constant_values, *fresh])
    return ids


@functools.cache
def _sequence_of(table: str, column: str) -> str:
    """The sequence behind `table`'s serial `column`, looked up once per process: given to
    nextval() per row, pg_get_serial_sequence() was looked up again for every new id, which
    cost ten times the nextval() itself."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
        return cursor.fetchone()[0]


_NOTHING = object()

# Fields (and the keys of foreign keys) whose values COPY can write as they are when they are
# None or of exactly this type: Django's preparation converts other types, and at most wraps
# these (integers in psycopg's Int2/Int4/Int8, written as the same digits in COPY's text
# rows). Most columns of a batch's rows (ids, texts) are such values, and preparing each one
# cost more than copying it.
_SENT_UNCHANGED = {
    models.CharField: str,
    models.TextField: str,
    models.BooleanField: bool,
    models.PositiveSmallIntegerField: int,
    models.PositiveIntegerField: int,
    models.AutoField: int,
    models.BigAutoField: int,
}


def _unchanged_types(field) -> tuple[type, ...]:
    kind = _SENT_UNCHANGED.get(type(field.target_field if field.is_relation else field))
    return (type(None), kind) if kind else ()


def _preparer(fields: list, connection):
    """A function giving a row's values for `fields` as the database takes them (in a list it
    reuses for the next row: copy or unpack it at once). Values sent unchanged skip the
    preparation; the rows of a batch share most other values (the same `now`): a value that
    is the very object of the previous row reuses its prepared form."""
    unchanged = [_unchanged_types(field) for field in fields]
    preps = [field.get_db_prep_save for field in fields]
    last_values, last_prepared = [_NOTHING] * len(fields), [None] * len(fields)

    def prepare(row: tuple) -> list:
        for i, value in enumerate(row):
            if type(value) in unchanged[i]:
                last_values[i], last_prepared[i] = _NOTHING, value
            elif value is not last_values[i]:
                last_values[i], last_prepared[i] = value, preps[i](value, connection)
        return last_prepared

    return prepare


@functools.cache
def insert_fields(model, *, exclude: tuple[str, ...] = ()) -> tuple[list, str]:
    """The fields an INSERT of `model` writes (all but the primary key and `exclude`), and
    their quoted column list."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk and f.name not in exclude]
    return fields, ", ".join(quote(field.column) for field in fields)


def insert_params(obj, fields: list) -> list:
    """`obj`'s values for `fields` as the database takes them (what Model.save would send)."""
    connection = connections[DEFAULT_DB_ALIAS]
    return [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]


def saved(obj, pk):
    """Marks `obj` as stored with `pk`, as Model.save does."""
    obj.pk = pk
    obj._state.adding, obj._state.db = False, DEFAULT_DB_ALIAS
    return obj


def insert_one(obj):
    """Inserts `obj` like `obj.save()` does for a new object, in one statement whose SQL is
    built once per model: Model.save compiled the INSERT anew each time, which cost the
    webhook more CPU than the round trip."""
    model = type(obj)
    fields, columns = insert_fields(model)
    connection = connections[DEFAULT_DB_ALIAS]
    table, pk = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(model._meta.pk.column)
    placeholders = ", ".join(["%s"] * len(fields))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING {pk}", insert_params(obj, fields)
        )
        return saved(obj, cursor.fetchone()[0])
