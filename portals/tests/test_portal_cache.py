import pytest
from django.utils import timezone

from portals import selectors, services
from portals.tests.factories import make_portal

pytestmark = pytest.mark.django_db


def test_other_processes_get_the_portal_from_redis_without_queries(django_assert_num_queries):
    portal, _ = make_portal("cached")
    selectors.active_portal("cached")
    selectors.forget_all_portals()  # what another process's memory looks like

    with django_assert_num_queries(0):
        config = selectors.active_portal("cached")

    assert config.portal.pk == portal.pk


def test_a_portal_change_invalidates_the_shared_cache(django_assert_num_queries, django_capture_on_commit_callbacks):
    portal, _ = make_portal("cached")
    old = selectors.active_portal("cached").key_hashes
    with django_capture_on_commit_callbacks(execute=True):
        services.rotate_portal_key(actor=None, portal_id=portal.pk, now=timezone.now(), revoke_previous=True)
    selectors.forget_all_portals()

    fresh = selectors.active_portal("cached").key_hashes

    assert fresh != old
    assert len(fresh) == 1


def test_a_cache_outage_falls_back_to_the_database(settings):
    make_portal("cached")
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }

    assert selectors.active_portal("cached").portal.code == "cached"
