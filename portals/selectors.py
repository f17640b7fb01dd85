"""Reads of portals on the hot path of the webhook."""

import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from .models import Portal, PortalKey


@dataclass(frozen=True)
class PortalConfig:
    portal: Portal  # treat as read-only: shared by the requests of this process
    key_hashes: tuple[str, ...]


_cache: dict[str, tuple[float, PortalConfig | None]] = {}


def active_portal(code: str) -> PortalConfig | None:
    """The active portal with `code` and its live key hashes, or None.

    Cached in the process for PORTAL_CACHE_SECONDS so the webhook needs no query for
    them; services that change a portal forget it here at once (other processes within
    the TTL). Unknown codes are cached too, so a flood of them costs no queries.
    """
    ttl = settings.PORTAL_CACHE_SECONDS
    hit = _cache.get(code)
    if hit and hit[0] > time.monotonic():
        return hit[1]
    portal = Portal.objects.filter(code=code, is_active=True).first()
    config = None
    if portal is not None:
        hashes = PortalKey.objects.filter(portal=portal, revoked_at__isnull=True).values_list("key_hash", flat=True)
        config = PortalConfig(portal=portal, key_hashes=tuple(hashes))
    if ttl > 0:
        _cache[code] = (time.monotonic() + ttl, config)
    return config


def forget_portal(code: str) -> None:
    _cache.pop(code, None)
    transaction.on_commit(lambda: _cache.pop(code, None))


def forget_all_portals() -> None:
    _cache.clear()
