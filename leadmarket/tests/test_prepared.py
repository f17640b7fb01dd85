"""leadmarket.prepared: statements prepared once per connection, sent in one pipeline."""

import pytest
from django.db import DataError, connection

from leadmarket import prepared

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as under gunicorn

HELD_LOCKS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"


def test_the_statements_are_one_transaction_that_ends_with_the_block():
    row = prepared.fetch_one([("SELECT pg_advisory_xact_lock(%s::int, %s::int)", [7, 8]), (HELD_LOCKS, [])])

    assert row == (1,)  # the first statement's lock, still held by the last one
    with connection.cursor() as cursor:
        cursor.execute(HELD_LOCKS)
        assert cursor.fetchone() == (0,)  # committed at the end of the pipeline


def test_a_statement_is_prepared_once_per_connection():
    for value in (1, 2, 3):
        assert prepared.fetch_one([("SELECT %s::int + 40", [value])]) == (value + 40,)

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int + 40'")
        assert cursor.fetchone() == (1,)


def test_an_error_is_djangos_and_leaves_the_connection_usable():
    with pytest.raises(DataError):
        prepared.fetch_one([("SELECT pg_advisory_xact_lock(1, 2)", []), ("SELECT 1 / %s::int", [0])])

    assert prepared.fetch_one([(HELD_LOCKS, [])]) == (0,)  # rolled back, lock released
