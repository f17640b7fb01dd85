"""PostgreSQL, with django-prometheus's query metrics, health-checking a persistent
connection only when it has been idle.

With CONN_HEALTH_CHECKS Django sends `SELECT 1` before the first query of every request
(or task) that reuses a connection: a second round trip for the webhook's one. A connection
that answered a moment ago is as good as checked; what breaks persistent connections
(a server restart or failover, an idle timeout, a proxy dropping quiet sockets) mostly
strikes the idle ones. So, as HikariCP's alive-bypass window does for Java pools (500 ms
there), the check runs only when no request has used the connection for
HEALTH_CHECK_AFTER_IDLE_SECONDS. A connection that breaks within that window fails its
request, and Django closes it at the request's end (`errors_occurred`), as it would
without health checks.
"""

import time

from django_prometheus.db.backends.postgresql import base

HEALTH_CHECK_AFTER_IDLE_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_used = float("-inf")  # when a request or task that used it last ended

    def close_if_unusable_or_obsolete(self):
        # Django calls this as a request (or task) starts and as it ends. `health_check_done`,
        # which Django resets here and sets on the connection's first use (or on connecting),
        # tells whether a request used it since the last call.
        used = self.connection is not None and self.health_check_done
        super().close_if_unusable_or_obsolete()
        if used:
            self.last_used = time.monotonic()

    def close_if_health_check_failed(self):
        if self.connection is not None and time.monotonic() - self.last_used < HEALTH_CHECK_AFTER_IDLE_SECONDS:
            self.health_check_done = True
        super().close_if_health_check_failed()
