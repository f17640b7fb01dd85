"""Rate-limit counters on the cache (Redis in production), failing open.

django-ratelimit keeps fixed-window counters; these helpers add what the API needs
around it: the seconds until the window ends (for Retry-After), counting only some
events (failed logins), and never turning a cache outage into a 500.
"""

import logging
from dataclasses import dataclass

from django_ratelimit.core import get_usage

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


def hit(request, limit: Limit, value: str) -> None:
    """Counts one event for `value` in the current window."""
    _usage(request, limit, value, increment=True)


def hit_and_check(request, limit: Limit, value: str) -> int | None:
    """Counts one event for `value` and returns the seconds to wait if it went over `limit`.

    One round trip instead of `retry_after` + `hit`, for hot paths (webhooks).
    """
    usage = _usage(request, limit, value, increment=True)
    if usage and usage["should_limit"]:
        return max(1, usage["time_left"])
    return None
