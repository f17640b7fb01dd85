"""Rate-limit counting on the real Redis cache: django-ratelimit's keys and windows, one
command per event."""

import time

from django.core.cache import caches
from django_ratelimit import ALL
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key

from leadmarket.api.ratelimit import Limit, hit, retry_after
from leadmarket.cache import RedisCache


def test_hits_count_in_a_window_that_expires_and_django_ratelimit_reads_the_same_count(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)  # one window for every call below
    backend = caches["default"]
    assert isinstance(backend, RedisCache)  # the test settings point the cache at Redis
    limit = Limit("test-hits", "2/m")

    waits = [hit(None, limit, "client-1") for _ in range(3)]

    assert waits[:2] == [None, None]
    assert 1 <= waits[2] <= 60
    assert 1 <= retry_after(None, limit, "client-1") <= 60  # django-ratelimit's own read of the count
    assert hit(None, limit, "client-2") is None  # another client, another count
    window = _get_window("client-1", 60)
    key = backend.make_and_validate_key(_make_cache_key(limit.group, window, limit.rate, "client-1", ALL))
    redis = backend._cache.get_client(key)
    assert int(redis.get(key)) == 3
    assert 0 < redis.ttl(key) <= 60 + EXPIRATION_FUDGE  # the window's key expires on its own
