"""Liveness and readiness probes for load balancers and orchestrators."""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

logger = logging.getLogger(__name__)
_migrations_known_applied = False


def live(request):
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_migrations() -> None:
    global _migrations_known_applied
    if _migrations_known_applied:  # once applied, they stay applied for this process's code
        return
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise RuntimeError(f"{len(pending)} migrations not applied")
    _migrations_known_applied = True


def _check_redis() -> None:
    # The cache and the Celery broker share REDIS_URL: one ping checks both.
    cache._cache.get_client(write=True).ping()


def ready(request):
    """Ready to take traffic: database reachable and migrated, Redis reachable when configured."""
    checks = {"database": _check_database, "migrations": _check_migrations}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis
    results, healthy = {}, True
    for name, check in checks.items():
        try:
            check()
            results[name] = {"status": "ok"}
        except Exception as exc:
            logger.warning("readiness check %s failed: %s", name, exc)
            results[name] = {"status": "error", "error": type(exc).__name__}
            healthy = False
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": results}, status=200 if healthy else 503
    )
