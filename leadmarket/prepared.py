"""Prepared statements sent in one pipeline: the webhook's ingest on PostgreSQL.

Django binds parameters on the client: each execution sends the statement's text with its
values inlined, and PostgreSQL parses and plans it anew. For the ingest (a duplicate lookup
and two INSERTs in one statement) planning cost about as much as executing. Here the
statements are bound on the server and prepared on their first execution on a connection
(psycopg keeps them per connection), and a block of them is sent as one pipeline: one
round trip, and outside a transaction one implicit transaction that commits at the Sync
ending the pipeline, so a lock taken by an earlier statement holds until the last one is
done. Prepared statements need a direct PostgreSQL connection or a pooler that keeps them
(PgBouncer 1.21+ with `max_prepared_statements`).

Only cursors of this module prepare: Django's bind on the client, which never prepares
(`prepare_threshold` is set in settings only because psycopg prepares nothing while it is
None). psycopg drops a connection's prepared statements after a ROLLBACK; they are
prepared again on their next use. In the query log, a statement's time is the time to
queue it: the pipeline's round trip comes after.
"""

import functools

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.postgresql.base import CursorDebugWrapper, ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django_prometheus.db.common import ExportingCursorWrapper


class _PreparingCursor(ServerBindingCursor):
    def execute(self, query, params=None, *, prepare=True, binary=None):
        return super().execute(query, params, prepare=prepare, binary=binary)


class _LoggingCursor(CursorDebugWrapper):
    """Logs a statement with its values inlined, as Django logs statements bound on the
    server (psycopg keeps no text of an executed prepared statement)."""

    def execute(self, sql, params=None):
        with self.debug_sql(self.db.ops.compose_sql(sql, params)):
            return CursorWrapper.execute(self, sql, params)


@functools.cache
def _cursor_class(alias: str, vendor: str):
    # Counted in the query metrics like every cursor of the connection (settings: ENGINE).
    return ExportingCursorWrapper(_PreparingCursor, alias, vendor)


def fetch_one(statements: list[tuple[str, list]]) -> tuple | None:
    """Runs `statements` ((sql, params) pairs, `%s` placeholders) in this order in one round
    trip, each prepared once per connection, and returns the first row of the last one.
    Inside a transaction they run in it; database errors are Django's, as from a cursor."""
    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, not the thread-local proxy
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    with connection.wrap_database_errors:
        # Wrapped as Django's own cursor() wraps its cursors: logged in tests and DEBUG, counted.
        connection.validate_thread_sharing()
        wrapper = _LoggingCursor if connection.queries_logged else CursorWrapper
        cursor = wrapper(_cursor_class(connection.alias, connection.vendor)(raw), connection)
        try:
            with raw.pipeline():
                for sql, params in statements:
                    cursor.execute(sql, params)
            return cursor.fetchone()
        finally:
            cursor.close()
