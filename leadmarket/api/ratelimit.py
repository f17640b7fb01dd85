"""Rate-limit counters on the cache (Redis in production), failing open.

django-ratelimit keeps fixed-window counters; these helpers add what the API needs
around it: the seconds until the window ends (for Retry-After), counting only some
events (failed logins), and never turning a cache outage into a 500.
"""

import logging
import time
from dataclasses import dataclass

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django_ratelimit import ALL
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, _split_rate, get_usage
from redis.commands.core import Script

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    group: str
    rate: str


def _usage(request, limit: Limit, value: str, *, increment: bool) -> dict | None:
    try:
        return get_usage(
            request, group=limit.group, key=lambda _group, _request: value, rate=limit.rate, increment=increment
        )
    except Exception:  # the cache is down: limiting is best effort, serving is not
        logger.warning("rate limit cache unavailable for %s", limit.group, exc_info=True)
        return None


def retry_after(request, limit: Limit, value: str) -> int | None:
    """Seconds to wait when `value` is over `limit`, else None. Does not count."""
    usage = _usage(request, limit, value, increment=False)
    if usage and usage["count"] >= usage["limit"] and usage["time_left"] >= 0:
        return max(1, usage["time_left"])
    return None


# django-ratelimit's counting (SET NX with the expiry, then INCR) as one atomic command:
# INCR, and the window's expiry when INCR created the key. One round trip, no pipeline.
_COUNT = Script(
    None, b"local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n"
)


def _redis_hit(backend: RedisCache, limit: Limit, value: str) -> dict | None:
    """Counts one event with django-ratelimit's key and window, in one Redis command."""
    count_limit, period = _split_rate(limit.rate)
    window = _get_window(value, period)
    key = backend.make_and_validate_key(_make_cache_key(limit.group, window, limit.rate, value, ALL))
    try:
        count = _COUNT(keys=[key], args=[period + EXPIRATION_FUDGE], client=backend._cache.get_client(key, write=True))
    except Exception:  # the cache is down: limiting is best effort, serving is not
        logger.warning("rate limit cache unavailable for %s", limit.group, exc_info=True)
        return None
    return {
        "count": count,
        "limit": count_limit,
        "should_limit": count > count_limit,
        "time_left": window - int(time.time()),
    }


def hit(request, limit: Limit, value: str) -> int | None:
    """Counts one event for `value`; seconds to wait when that went over the limit."""
    if isinstance(backend := caches["default"], RedisCache):
        usage = _redis_hit(backend, limit, value)
    else:
        usage = _usage(request, limit, value, increment=True)
    if usage and usage["should_limit"] and usage["time_left"] >= 0:
        return max(1, usage["time_left"])
    return None
