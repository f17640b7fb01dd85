"""Inserts without the ORM's per-statement compilation: COPY for the batch paths
(redistribution), and single-row INSERTs built once per model for the webhook.

Bulk: COPY instead of INSERT ... UNNEST.

Django's `bulk_create` builds the statement in Python and psycopg dumps every column as an
array; for hundreds of offers and notifications per batch that was most of redistribution's
CPU. Here the primary keys come from the table's sequence in one query, then the rows are
streamed with COPY. Same result as `bulk_create` (objects get their pks, defaults and
`pre_save` values apply); other databases fall back to `bulk_create`.
"""

import functools

from django.db import DEFAULT_DB_ALIAS, connections


def copy_create(objs: list) -> list:
    if not objs:
        return objs
    model = type(objs[0])
    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, not the thread-local proxy
    if connection.vendor != "postgresql":
        return model.objects.bulk_create(objs)
    meta = model._meta
    table, pk = meta.db_table, meta.pk
    fields = [field for field in meta.concrete_fields if field is not pk]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, pk.column, len(objs)],
        )
        for obj, (new_id,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = new_id
        columns = ", ".join(connection.ops.quote_name(column) for column in [pk.column, *(f.column for f in fields)])
        raw = cursor.cursor  # psycopg's own cursor: COPY is not part of Django's cursor API
        prepare = _preparer(fields, connection)
        with raw.copy(f"COPY {connection.ops.quote_name(table)} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row([obj.pk, *prepare(obj)])
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
    return objs


_NOTHING = object()


def _preparer(fields: list, connection):
    """A function giving an object's values for `fields` as the database takes them, as
    `bulk_create` prepares them. The objects of a batch share most values (the same `now`,
    status, empty strings): a value that is the very object of the previous row reuses
    its prepared form, which saved most of the preparing."""
    steps = [(field.pre_save, field.get_db_prep_save) for field in fields]
    last_values, last_prepared = [_NOTHING] * len(fields), [None] * len(fields)

    def prepare(obj) -> list:
        for i, (pre_save, prep) in enumerate(steps):
            value = pre_save(obj, True)
            if value is not last_values[i]:
                last_values[i], last_prepared[i] = value, prep(value, connection)
        return list(last_prepared)

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
