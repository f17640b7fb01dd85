"""Bulk inserts for the batch paths (redistribution): COPY instead of INSERT ... UNNEST.

Django's `bulk_create` builds the statement in Python and psycopg dumps every column as an
array; for hundreds of offers and notifications per batch that was most of redistribution's
CPU. Here the primary keys come from the table's sequence in one query, then the rows are
streamed with COPY. Same result as `bulk_create` (objects get their pks, defaults and
`pre_save` values apply); other databases fall back to `bulk_create`.
"""

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
        prepared = [(field.get_db_prep_save, field.pre_save) for field in fields]
        with raw.copy(f"COPY {connection.ops.quote_name(table)} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row([obj.pk, *(prep(pre_save(obj, True), connection) for prep, pre_save in prepared)])
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
    return objs
