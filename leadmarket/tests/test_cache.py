from django.core.cache import caches

from leadmarket.cache import RedisCache


def test_the_redis_cache_reuses_one_client_per_pool_and_still_works():
    cache = caches["default"]
    assert isinstance(cache, RedisCache)
    client = cache._cache.get_client("a", write=True)

    assert cache._cache.get_client("b", write=False) is client
    assert cache.add("cache-test", 1, 10) is True
    assert cache.add("cache-test", 2, 10) is False
    assert cache.get("cache-test") == 1
