"""Reads of portals on the hot path of the webhook."""

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from .models import Portal, PortalKey


@dataclass(frozen=True)
class PortalConfig:
    portal: Portal  # treat as read-only: shared by the requests of this process
    key_hashes: tuple[str, ...]


logger = logging.getLogger(__name__)
_cache: dict[str, tuple[float, PortalConfig | None]] = {}
SHARED_CACHE_SECONDS = 300


def _shared_key(code: str) -> str:
    return f"portal-config:v1:{code}"


def _load(code: str) -> PortalConfig | None:
    portal = Portal.objects.filter(code=code, is_active=True).first()
    if portal is None:
        return None
    hashes = PortalKey.objects.filter(portal=portal, revoked_at__isnull=True).values_list("key_hash", flat=True)
    return PortalConfig(portal=portal, key_hashes=tuple(hashes))


def active_portal(code: str) -> PortalConfig | None:
    """The active portal with `code` and its live key hashes, or None.

    Two cache levels keep the webhook free of queries for them: this process's memory for
    PORTAL_CACHE_SECONDS, then Redis (shared by every process) for five minutes. Services
    that change a portal delete it from Redis and from this process after commit; other
    processes see the change when their short memory entry runs out. Unknown codes are
    cached too, so a flood of them costs no queries. A cache outage only costs queries.
    """
    ttl = settings.PORTAL_CACHE_SECONDS
    hit = _cache.get(code)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    try:
        shared = cache.get(_shared_key(code))
    except Exception:
        logger.warning("portal cache unavailable", exc_info=True)
        shared = None
    config = shared[0] if shared is not None else _load(code)
    if shared is None:
        try:
            cache.set(_shared_key(code), (config,), SHARED_CACHE_SECONDS)
        except Exception:
            logger.warning("portal cache unavailable", exc_info=True)
    if ttl > 0:
        _cache[code] = (time.monotonic() + ttl, config)
    return config


def forget_portal(code: str) -> None:
    """Drops the portal's cached configuration now and again once the change commits."""

    def forget():
        _cache.pop(code, None)
        try:
            cache.delete(_shared_key(code))
        except Exception:
            logger.warning("portal cache unavailable; entry expires on its own", exc_info=True)

    forget()
    transaction.on_commit(forget)


def forget_all_portals() -> None:
    _cache.clear()
